package detect

import (
	"fmt"

	"github.com/nokmem/nokmem/verify/memcg"
	"github.com/nokmem/nokmem/verify/migrate"
)

// Status is detect's verdict, also its exit code (the node-problem-detector
// custom-plugin codes).
type Status int

// Verdicts.
const (
	// Healthy: no problem found. A kernel where the leak cannot happen is
	// healthy.
	Healthy Status = 0
	// ProblemFound: at least one entry of Problems.
	ProblemFound Status = 1
	// Unknown: the kernel's semantics could not be decided (or detect failed).
	Unknown Status = 2
)

// Problem is one thing wrong with the node. Count leads the short forms.
type Problem struct {
	// Count is the number that matters (cgroups, trees), 0 if none applies.
	Count int `json:"count,omitempty"`
	// Short fits a node-problem-detector line; Text is the full sentence.
	Short string `json:"short"`
	Text  string `json:"text"`
}

// Problems lists what is wrong, most important first: kmem-active cgroups
// and binaries that activate kmem or may (only on 3.10 semantics; a stock
// version verify/affected knows to be unaffected is no problem, and with the
// systemd driver neither is a recognised version, which activates kmem only
// on request), then runc and docker-runc binaries with known vulnerabilities
// and what an earlier verify run left (on any kernel).
func (r *Report) Problems() []Problem {
	var p []Problem
	if r.Semantics310 {
		systemd := r.Driver == memcg.DriverSystemd
		switch n := len(r.KmemActive); {
		case n > 0 && systemd:
			p = append(p, r.systemdProblem())
		case n > 0:
			p = append(p, Problem{Count: n, Short: fmt.Sprintf("%d kmem-active cgroups", n), Text: fmt.Sprintf("%d kmem-active cgroups under %s", n, r.Kubepods)})
		}
		for _, b := range r.Binaries {
			// With the systemd driver a recognised kubelet or runc
			// activates kmem only on request (systemd.go): the cgroups
			// show whether anything asked.
			if b.Problem() && !(systemd && b.OnRequestOnly()) {
				text := fmt.Sprintf("%s at %s is %s (%s)", b.Name, b.Path, b.Kind, b.Reason)
				if u := b.Upstream; u != nil {
					text += fmt.Sprintf(": %s: %s; fix: %s", u.Verdict, u.Reason, u.Remedy)
				}
				p = append(p, Problem{Short: b.Name + " " + b.Kind, Text: text})
			}
		}
	}
	p = append(p, r.vulnProblems()...)
	if n := len(r.Leftovers.TempTrees); n > 0 {
		p = append(p, Problem{Count: n, Short: fmt.Sprintf("%d leftover %s trees", n, migrate.TempPrefix),
			Text: fmt.Sprintf("%d temporary migration trees left under the memory root: %v (finish or roll back with verify migrate, or remove them once empty)", n, r.Leftovers.TempTrees)})
	}
	if j := r.Leftovers.Journal; j != nil && (j.Unfinished || j.Error != "") {
		what := "phase " + j.Phase
		if j.Error != "" {
			what = "unreadable: " + j.Error
		}
		p = append(p, Problem{Short: "unfinished migration", Text: fmt.Sprintf("unfinished migration journal %s (%s): rerun verify migrate, or verify migrate --rollback", j.Path, what)})
	}
	if ip := installProblem(r.Leftovers.Install); ip != nil {
		p = append(p, *ip)
	}
	return p
}

// Status is ProblemFound when Problems is not empty, else Unknown when the
// kernel's semantics are unknown, else Healthy.
func (r *Report) Status() Status {
	switch {
	case len(r.Problems()) > 0:
		return ProblemFound
	case r.Semantics.Kind == memcg.KindUnknown:
		return Unknown
	}
	return Healthy
}

// vulnProblems: every runc or docker-runc with a known vulnerability is a
// problem, on any kernel, with its CVEs and the fix. A kubelet's are
// listed (VulnLines, JSON, textfile) but are no problem verify can fix.
func (r *Report) vulnProblems() []Problem {
	var p []Problem
	for _, b := range r.Binaries {
		v := b.Vulnerabilities
		if b.Name == "kubelet" || v == nil || v.Count == 0 {
			continue
		}
		p = append(p, Problem{Count: v.Count, Short: fmt.Sprintf("%s %d CVEs", b.Name, v.Count),
			Text: fmt.Sprintf("%s at %s (%s) has %d known vulnerabilities (%s); fix: %s", b.Name, b.Path, v.Version, v.Count, v.CVEs(), v.Fix)})
	}
	return p
}
