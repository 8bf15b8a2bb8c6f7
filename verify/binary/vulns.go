package binary

import (
	"fmt"
	"strings"

	"github.com/nokmem/nokmem/verify/affected"
)

// Vulns are the known vulnerabilities of a binary's version (and commit),
// from the table verify/affected generates from the pinned Go
// vulnerability database and nokmem's supplement. A nokmem build carries
// its upstream version's list.
type Vulns struct {
	// Database is the golang.org/x/vulndb version of the table.
	Database string `json:"database"`
	// Version is the canonical upstream version matched.
	Version string `json:"version"`
	Count   int    `json:"count"`
	// Known lists them: OSV ids, CVE aliases, fixed versions.
	Known []affected.Vulnerability `json:"known"`
	// Fix says what to do, for runc and docker-runc.
	Fix string `json:"fix,omitempty"`
}

// knownVulns returns the known vulnerabilities of version v (as
// affected.Parse read it from a binary's --version output).
func knownVulns(v affected.Version) *Vulns {
	known := affected.Vulnerabilities(v)
	out := &Vulns{Database: affected.VulnDatabase, Version: v.Version, Count: len(known), Known: known}
	if out.Known == nil {
		out.Known = []affected.Vulnerability{}
	}
	if v.Project == affected.Runc && out.Count > 0 {
		out.Fix = "replace it with the maintained runc of a nokmem bundle (verify install --bundle)"
		if clean := affected.CleanVersions(affected.Runc); len(clean) > 0 {
			out.Fix += ", or any runc " + strings.Join(clean, "+ or ") + "+, which have no known vulnerability"
		}
	}
	return out
}

// VulnCount is the number of known vulnerabilities (0 when unknown).
func (b Binary) VulnCount() int {
	if b.Vulnerabilities == nil {
		return 0
	}
	return b.Vulnerabilities.Count
}

// VulnVersion is the version the count is for, "" when not recognised.
func (b Binary) VulnVersion() string {
	if b.Vulnerabilities == nil {
		return ""
	}
	return b.Vulnerabilities.Version
}

// VulnLines describe b's known vulnerabilities for the text report: for
// a runc, one line per vulnerability (id, CVEs, fixed versions), then the
// fix; for a kubelet one line with the CVEs (-o json has the rest).
func (b Binary) VulnLines() []string {
	v := b.Vulnerabilities
	if v == nil || v.Count == 0 {
		return nil
	}
	if b.Name == "kubelet" {
		return []string{fmt.Sprintf("%d known in Kubernetes %s (%s): fixed in later Kubernetes releases; -o json lists the fixed versions", v.Count, v.Version, v.CVEs())}
	}
	var out []string
	for _, k := range v.Known {
		fixed := strings.Join(k.Fixed, ", ")
		if fixed == "" {
			fixed = "no release"
		}
		out = append(out, fmt.Sprintf("%s fixed in %s: %s", strings.Join(append([]string{k.ID}, k.Aliases...), " "), fixed, k.Summary))
	}
	if v.Fix != "" {
		out = append(out, "fix: "+v.Fix)
	}
	return out
}

// CVEs lists the CVE ids (else the OSV ids) of v's known vulnerabilities.
func (v *Vulns) CVEs() string {
	vs := v.Known
	var ids []string
	for _, v := range vs {
		if len(v.Aliases) > 0 {
			ids = append(ids, v.Aliases...)
		} else {
			ids = append(ids, v.ID)
		}
	}
	return strings.Join(ids, ", ")
}
