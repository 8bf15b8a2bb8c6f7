// Package binary finds and identifies the kubelet and runtime binaries of a
// node: where they are (Search, Find), their sha256 (FileSHA256), whether
// each is a nokmem build (by a published or --known-sums checksum, never by
// its version string), a stock build (with what verify/affected knows about
// its version) or unknown, and the known vulnerabilities of its version.
package binary

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nokmem/nokmem/verify/affected"
	"github.com/nokmem/nokmem/verify/nodeexec"
)

// NokmemMarker is the version suffix the nokmem build stamps into kubelet
// (gitVersion v1.12.4+nokmem) and runc (version 1.0.0-rc5+nokmem).
const NokmemMarker = "+nokmem"

// Names are the programs Find looks for.
var Names = []string{"kubelet", "runc", "docker-runc"}

// DefaultSearchDirs are searched, in order, for Names.
var DefaultSearchDirs = []string{"/usr/local/bin", "/usr/bin", "/usr/libexec/docker", "/bin"}

// Build kinds of a binary.
const (
	// KindNokmem: a nokmem build: its sha256 is a published one or one of
	// KnownSums (identity.go). A "+nokmem" version alone is KindUnknown.
	KindNokmem = "nokmem"
	// KindStock: a recognised kubelet/runc that is not a nokmem build;
	// Binary.Upstream says whether its version activates kmem.
	KindStock = "stock"
	// KindUnknown: its version could not be read or recognised.
	KindUnknown = "unknown"
)

// Options says where to find the binaries and what counts as nokmem.
type Options struct {
	// Paths maps a name of Names to an explicit path; a name with an
	// explicit path is not searched for.
	Paths map[string]string
	// SearchDirs replaces DefaultSearchDirs when not nil.
	SearchDirs []string
	// KnownSums maps sha256 hex digests of nokmem builds to a file name
	// (from a release's SHA256SUMS).
	KnownSums map[string]string
	// Timeout bounds each "--version" run; zero means DefaultVersionTimeout.
	// The binaries run at once, so Find takes at most Timeout +
	// nodeexec.WaitDelay plus the time to hash them.
	Timeout time.Duration
}

// Binary is one kubelet or runtime binary found on the node.
type Binary struct {
	Name    string `json:"name"`
	Path    string `json:"path"`
	Version string `json:"version"`
	SHA256  string `json:"sha256"`
	Kind    string `json:"kind"`
	// Reason says why Kind is what it is.
	Reason string `json:"reason"`
	// Upstream, for a stock binary, says whether its version activates
	// kmem and what fixes it (verify/affected).
	Upstream *affected.Finding `json:"upstream,omitempty"`
	// Vulnerabilities are the known vulnerabilities of its version (vulns.go).
	Vulnerabilities *Vulns `json:"vulnerabilities,omitempty"`
}

// Nokmem reports whether b is a nokmem build.
func (b Binary) Nokmem() bool { return b.Kind == KindNokmem }

// Problem reports whether b may activate kmem accounting: not a nokmem
// build, and not a stock version known to be unaffected.
func (b Binary) Problem() bool {
	return !b.Nokmem() && (b.Upstream == nil || b.Upstream.Verdict != affected.Unaffected)
}

// Verdict is affected.Affected, Unaffected or Unknown for a stock or
// unknown binary, and KindNokmem for a nokmem build.
func (b Binary) Verdict() string {
	switch {
	case b.Nokmem():
		return KindNokmem
	case b.Upstream != nil:
		return b.Upstream.Verdict
	}
	return affected.Unknown
}

// OnRequestOnly reports whether b, under the systemd cgroup driver,
// activates kmem accounting only when a kernel-memory limit is requested
// (verify/detect, systemd.go, cites libcontainer): a nokmem build, or a
// kubelet or runc whose version verify/affected recognises (every
// recognised version uses libcontainer's systemd manager).
func (b Binary) OnRequestOnly() bool {
	return b.Nokmem() || b.Kind == KindStock && b.Upstream != nil && b.Upstream.Verdict != affected.Unknown
}

// DefaultVersionTimeout bounds one "--version" run.
const DefaultVersionTimeout = 10 * time.Second

// Find identifies every binary of Names that exists, all at once, so that
// one that hangs delays the caller by one timeout at most.
func Find(o Options) ([]Binary, error) {
	dirs := o.SearchDirs
	if dirs == nil {
		dirs = DefaultSearchDirs
	}
	type found struct {
		b   Binary
		err error
	}
	var results []chan found
	for _, name := range Names {
		p, ok := o.Paths[name]
		if !ok {
			p = Search(name, dirs)
		}
		if p == "" {
			continue
		}
		ch := make(chan found, 1)
		results = append(results, ch)
		go func() {
			b, err := Identify(name, p, o)
			ch <- found{b, err}
		}()
	}
	out := []Binary{}
	var errs []error
	for _, ch := range results {
		f := <-ch
		if f.err != nil {
			errs = append(errs, f.err)
			continue
		}
		out = append(out, f.b)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	preferNodeKubelet(out)
	return out, nil
}

// preferNodeKubelet points a runc fix offered in several bundles at the
// one whose kubelet matches the node's kubelet minor release.
func preferNodeKubelet(bins []Binary) {
	kubelet := ""
	for _, b := range bins {
		if b.Name == "kubelet" {
			if v, ok := affected.Parse("kubelet", b.Version); ok {
				kubelet = v.Version
			}
		}
	}
	for i := range bins {
		if u := bins[i].Upstream; u != nil && bins[i].Name != "kubelet" {
			u.PreferKubelet(kubelet)
		}
	}
}

// Search returns the first regular file called name in dirs, or "".
func Search(name string, dirs []string) string {
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p
		}
	}
	return ""
}

// Identify hashes the binary at path, runs it with --version and classifies
// it: a nokmem build, a stock build (with what verify/affected knows about
// its version), or unknown (no recognised version output).
func Identify(name, path string, o Options) (Binary, error) {
	b := Binary{Name: name, Path: path}
	sum, tagged, err := scanBinary(path)
	if err != nil {
		return b, fmt.Errorf("identify %s: %w", name, err)
	}
	b.SHA256 = sum
	timeout := o.Timeout
	if timeout == 0 {
		timeout = DefaultVersionTimeout
	}
	out, errOut, runErr := nodeexec.Run(context.Background(), timeout, path, "--version")
	stdout, stderr := string(out), string(errOut)
	b.Version = firstLine(stdout)
	v, parsed := affected.Parse(name, stdout)
	if parsed {
		b.Vulnerabilities = knownVulns(v)
	}
	nokmemWhy, nokmem := nokmemBuild(sum, o.KnownSums)
	switch {
	case runErr != nil && errors.Is(runErr, nodeexec.ErrTimeout):
		b.Kind, b.Reason = KindUnknown, fmt.Sprintf("%s --version: %v", path, runErr)
	case nokmem:
		b.Kind, b.Reason = KindNokmem, nokmemWhy
	case strings.Contains(stdout, NokmemMarker):
		b.Kind, b.Reason = KindUnknown, claimsNokmemReason(sum)
	case runErr != nil:
		b.Kind, b.Reason = KindUnknown, fmt.Sprintf("%s --version: %v: %s", path, runErr, firstLine(stderr))
	case !parsed:
		b.Kind, b.Reason = KindUnknown, fmt.Sprintf("unrecognised version output %q", b.Version)
	default:
		f := affected.Classify(name, stdout)
		if tagged {
			f.BuiltWithNokmemTag()
		}
		b.Kind, b.Reason, b.Upstream = KindStock, "no "+NokmemMarker+" marker and no known checksum", &f
	}
	return b, nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// FileSHA256 returns the hex sha256 of the file at path.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// scanBinary returns the hex sha256 of the file at path and whether it
// holds affected.KmemDisabledError (built with -tags nokmem), in one read.
func scanBinary(path string) (string, bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	h := sha256.New()
	sc := &stringScanner{needle: []byte(affected.KmemDisabledError)}
	if _, err := io.Copy(io.MultiWriter(h, sc), f); err != nil {
		return "", false, fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), sc.found, nil
}

// stringScanner is an io.Writer that looks for needle in what is written,
// also across the boundary of two writes.
type stringScanner struct {
	needle []byte
	tail   []byte // the last len(needle)-1 bytes written
	found  bool
}

func (s *stringScanner) Write(p []byte) (int, error) {
	if s.found {
		return len(p), nil
	}
	buf := append(s.tail, p...)
	if bytes.Contains(buf, s.needle) {
		s.found = true
		return len(p), nil
	}
	keep := min(len(buf), len(s.needle)-1)
	s.tail = append(s.tail[:0:0], buf[len(buf)-keep:]...)
	return len(p), nil
}

// ReadKnownSums reads a SHA256SUMS file ("<hex>  <name>" lines) into a
// digest → name map for Options.KnownSums.
func ReadKnownSums(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("known sums: %w", err)
	}
	m := map[string]string{}
	for i, line := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		sum, name, ok := strings.Cut(line, " ")
		name = strings.TrimLeft(strings.TrimSpace(name), "*")
		if !ok || len(sum) != 64 || name == "" {
			return nil, fmt.Errorf("known sums %s:%d: malformed line %q", path, i+1, line)
		}
		m[strings.ToLower(sum)] = name
	}
	return m, nil
}
