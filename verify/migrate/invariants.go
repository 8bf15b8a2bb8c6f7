package migrate

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Check is one invariant verified at the end of a run.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// Names of the invariants.
const (
	CheckPaths    = "same-paths"
	CheckSettings = "same-settings"
	CheckPids     = "pids-in-place"
	CheckNoTemp   = "no-temp-tree"
	CheckNewDir   = "new-kubepods"
)

// ErrInvariant is returned when an invariant does not hold at the end.
var ErrInvariant = errors.New("invariant violated")

// maxListed bounds how many offenders a check names.
const maxListed = 5

func listed(items []string) string {
	if len(items) > maxListed {
		return strings.Join(items[:maxListed], "; ") + fmt.Sprintf("; and %d more", len(items)-maxListed)
	}
	return strings.Join(items, "; ")
}

// invariants compares the tree with the snapshot. newDir asks for the
// check that kubepods is a different directory than before.
func (e *Engine) invariants(newDir bool) []Check {
	snap := e.j.Snapshot
	e.rep.Refused = nil
	for _, r := range e.j.Refused {
		e.rep.Refused = append(e.rep.Refused, e.h.Path(under(e.kubepods, r)))
	}
	var checks []Check
	add := func(name string, bad []string, ok string, err error) {
		c := Check{Name: name, OK: err == nil && len(bad) == 0, Detail: ok}
		switch {
		case err != nil:
			c.Detail = err.Error()
		case len(bad) > 0:
			c.Detail = listed(bad)
		}
		checks = append(checks, c)
	}

	all, walkErr := e.h.Walk(e.kubepods)
	var paths []string
	for _, abs := range all {
		paths = append(paths, strings.TrimPrefix(strings.TrimPrefix(abs, e.kubepods), "/"))
	}
	var want []string
	for _, n := range snap.Nodes {
		want = append(want, n.Rel)
	}
	var bad []string
	for _, p := range want {
		if !slices.Contains(paths, p) {
			bad = append(bad, "missing "+e.h.Path(under(e.kubepods, p)))
		}
	}
	for _, p := range paths {
		if !slices.Contains(want, p) {
			bad = append(bad, "unexpected "+e.h.Path(under(e.kubepods, p)))
		}
	}
	add(CheckPaths, bad, fmt.Sprintf("%d cgroups, the same relative paths as before", len(want)), walkErr)

	bad = nil
	var settingsErr error
	where := map[int]string{}
	for _, n := range snap.Nodes {
		rel := under(e.kubepods, n.Rel)
		got, err := readSettings(e.h, rel)
		if err != nil {
			settingsErr = errors.Join(settingsErr, err)
			continue
		}
		for _, f := range n.Settings.Diff(got) {
			if e.j.refused(n.Rel, f) {
				continue // reported in Report.Refused
			}
			bad = append(bad, fmt.Sprintf("%s: %q, was %q", e.h.Path(rel, f), got.value(f), n.Settings.value(f)))
		}
		pids, err := e.h.Procs(rel)
		if err != nil {
			settingsErr = errors.Join(settingsErr, err)
			continue
		}
		for _, p := range pids {
			where[p] = n.Rel
		}
	}
	ok := "every copied setting reads back as before"
	if len(e.j.Refused) > 0 {
		ok = fmt.Sprintf("every copied setting reads back as before, except %d the kernel refused (inherited values kept)", len(e.j.Refused))
	}
	add(CheckSettings, bad, ok, settingsErr)

	bad = nil
	alive, exited := 0, 0
	for _, n := range snap.Nodes {
		for _, p := range n.Pids {
			got, found := where[p]
			switch {
			case found && got == n.Rel:
				alive++
			case found:
				bad = append(bad, fmt.Sprintf("pid %d is in %s, was in %s", p, e.h.Path(under(e.kubepods, got)), e.h.Path(under(e.kubepods, n.Rel))))
			case e.cfg.PidAlive(p):
				bad = append(bad, fmt.Sprintf("pid %d is alive but no longer under %s (was in %s)", p, e.h.Path(e.kubepods), e.h.Path(under(e.kubepods, n.Rel))))
			default:
				exited++
			}
		}
	}
	add(CheckPids, bad, fmt.Sprintf("%d processes in the same relative cgroup, %d exited meanwhile", alive, exited), settingsErr)

	tempLeft, err := exists(e.h, e.temp)
	bad = nil
	if tempLeft {
		bad = []string{e.h.Path(e.temp) + " still exists"}
	}
	add(CheckNoTemp, bad, e.h.Path(e.temp)+" is gone", err)

	if newDir {
		ino, err := inode(e.h, e.kubepods)
		bad = nil
		if err == nil && ino == snap.Inode {
			bad = []string{fmt.Sprintf("%s still has inode %d: it is the old directory", e.h.Path(e.kubepods), ino)}
		}
		add(CheckNewDir, bad, fmt.Sprintf("%s is a new directory (inode %d, was %d)", e.h.Path(e.kubepods), ino, snap.Inode), err)
	}
	return checks
}

// checksError joins the failed checks into one ErrInvariant error.
func checksError(checks []Check) error {
	var msgs []string
	for _, c := range checks {
		if !c.OK {
			msgs = append(msgs, c.Name+": "+c.Detail)
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrInvariant, strings.Join(msgs, "; "))
}
