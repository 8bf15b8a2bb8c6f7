package report

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/nokmem/nokmem/verify/binary"
	"github.com/nokmem/nokmem/verify/detect"
	"github.com/nokmem/nokmem/verify/memcg"
)

// NPDMaxMessage is the longest message written; node-problem-detector
// truncates plugin output (max_output_length, 80 in its examples) anyway.
const NPDMaxMessage = 80

// WriteNPD writes msg as the one short line node-problem-detector reads.
func WriteNPD(w io.Writer, msg string) error {
	msg = strings.Join(strings.Fields(msg), " ")
	if r := []rune(msg); len(r) > NPDMaxMessage {
		msg = string(r[:NPDMaxMessage-1]) + "…"
	}
	_, err := fmt.Fprintln(w, msg)
	return err
}

// NPD is the node-problem-detector verdict of a detect report (or of the
// error that stopped detect) and its one line (at most NPDMaxMessage
// characters), leading with the number that matters:
// kmem-active cgroups (or the first problem's count) when something is
// wrong, the leaked IDs when all is well.
func NPD(r *detect.Report, err error) (detect.Status, string) {
	if err != nil {
		return detect.Unknown, "unknown: " + err.Error()
	}
	leaked := ""
	if r.Semantics310 && r.Leaked.Available {
		// NPD lines are short: ">=" marks a lower bound (detect's output says why).
		leaked = fmt.Sprintf("%d leaked IDs", r.Leaked.IDs)
		if !r.Leaked.Exact {
			leaked = ">=" + leaked
		}
	}
	switch r.Status() {
	case detect.ProblemFound:
		var parts []string
		for i, p := range r.Problems() {
			parts = append(parts, p.Short)
			if i == 0 && leaked != "" {
				parts = append(parts, leaked)
			}
		}
		if r.Semantics310 {
			if b := fixBundle(r.Binaries); b != "" {
				parts = append(parts, "fix "+b)
			}
		}
		return detect.ProblemFound, fitLine(parts)
	case detect.Unknown:
		return detect.Unknown, "unknown: " + r.Semantics.Reason
	}
	if !r.Semantics310 {
		return detect.Healthy, fmt.Sprintf("OK: kernel %s frees memcg IDs at rmdir, no leak", r.Kernel)
	}
	builds := "nokmem builds"
	for _, b := range r.Binaries {
		if !b.Nokmem() {
			builds = "no affected builds"
		}
	}
	// Most important first: fitLine drops from the end what does not fit.
	parts := []string{fmt.Sprintf("OK: 0 kmem-active of %d kubepods cgroups", r.KubepodsCgroups), builds}
	if r.Driver == memcg.DriverSystemd {
		parts = []string{"OK: systemd driver, kmem only on request", fmt.Sprintf("0 kmem-active of %d cgroups", r.KubepodsCgroups)}
	}
	if leaked != "" {
		parts = append(parts, leaked)
	}
	return detect.Healthy, fitLine(parts)
}

// fixBundle is the one bundle that fixes every affected binary, "" when
// there is none or more than one.
func fixBundle(bins []binary.Binary) string {
	bundle := ""
	for _, b := range bins {
		if !b.Problem() {
			continue
		}
		if b.Upstream == nil || b.Upstream.Bundle == "" || bundle != "" && bundle != b.Upstream.Bundle {
			return ""
		}
		bundle = b.Upstream.Bundle
	}
	return bundle
}

// fitLine joins parts with ", " and, when they do not fit in an NPD line,
// keeps the leading ones and says how many were left out.
func fitLine(parts []string) string {
	line := ""
	for i, p := range parts {
		next := p
		if i > 0 {
			next = line + ", " + p
		}
		more := ""
		if rest := len(parts) - i - 1; rest > 0 {
			more = fmt.Sprintf(", +%d more", rest)
		}
		if utf8.RuneCountInString(next+more) > NPDMaxMessage && i > 0 {
			return line + fmt.Sprintf(", +%d more", len(parts)-i)
		}
		line = next
	}
	return line
}
