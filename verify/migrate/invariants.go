package migrate

import (
	"errors"
	"fmt"
	"io/fs"
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
	CheckOldTree  = "old-tree"
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

// checkStage says when the invariants are checked.
type checkStage int

const (
	// checkSwap: the fresh tree was just put at kubepods; the kubelet is
	// still stopped, so the tree must match the plan.
	checkSwap checkStage = iota
	// checkCleanup: the old tree is gone; the kubelet may have created and
	// removed pods since the swap, which is accepted and reported.
	checkCleanup
	// checkRollback: every process is back in the original tree.
	checkRollback
)

// invariants compares kubepods with the plan from one walk and one
// pid-list read per cgroup. Settings are read back only where the plan
// wrote one (the rest is what mkdir gives, checked on the first cgroups
// the build created).
//
// The reads each check needs: same-paths one walk of kubepods; same-settings
// one read per written setting; pids-in-place one cgroup.procs read per
// cgroup (shared with same-paths' walk), tasks of the cgroups that hold
// threads apart from their process, and the start time in the process
// table of a planned pid not found in place (exited, or reused?);
// no-temp-tree, new-kubepods and old-tree one stat each. With the
// snapshot's read and the drain's, a full migration reads each pid list
// three times, each for its own reason: the plan (journaled before any
// change), the list moved (read right before the moves, so a pid that
// exited since the plan and was reused is never moved), and this check of
// the end state. The critical part alone adds the drain's re-read of each
// populated source (moveTree) and, for verify run, this check at the swap.
func (e *Engine) invariants(stage checkStage) []Check {
	snap := e.j.Snapshot
	e.rep.Refused = nil
	for _, r := range e.j.Refused {
		e.rep.Refused = append(e.rep.Refused, e.h.Path(under(e.kubepods, r)))
	}
	e.rep.Adopted, e.rep.Vanished, e.rep.Regrouped = e.j.Adopted, e.j.Vanished, snap.Regrouped
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

	all, walkErr := e.fs.Walk(e.kubepods)
	have := map[string]bool{}
	where := map[int][]string{} // a split process shows in several cgroups
	lists, gone, readErr := e.procsOf(all)
	for i, abs := range all {
		if gone[i] {
			continue // removed between the walk and the read: as if not found
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(abs, e.kubepods), "/")
		have[rel] = true
		for _, p := range lists[i] {
			where[p] = append(where[p], rel)
		}
	}
	var bad []string
	e.rep.NewCgroups, e.rep.Gone = nil, nil
	for _, n := range snap.Nodes {
		if have[n.Rel] {
			continue
		}
		// With the kubelet stopped the runtime still removes the cgroup of
		// a container that exited (containerd, runc delete): accepted when
		// no planned process of the cgroup or below it is alive.
		if stage == checkCleanup || !e.plannedAlive(n.Rel) {
			e.rep.Gone = append(e.rep.Gone, e.h.Path(under(e.kubepods, n.Rel)))
		} else {
			bad = append(bad, "missing "+e.h.Path(under(e.kubepods, n.Rel)))
		}
	}
	for _, abs := range all {
		rel := strings.TrimPrefix(strings.TrimPrefix(abs, e.kubepods), "/")
		if snap.index(rel) < 0 {
			e.rep.NewCgroups = append(e.rep.NewCgroups, e.h.Path(abs))
		}
	}
	ok := fmt.Sprintf("%d cgroups at the planned paths", len(snap.Nodes)-len(e.rep.Gone))
	if len(e.rep.NewCgroups) > 0 {
		ok += fmt.Sprintf("; %d created since in the fresh (non-kmem) tree, accepted: %s", len(e.rep.NewCgroups), listed(e.rep.NewCgroups))
	}
	if len(e.rep.Gone) > 0 {
		ok += fmt.Sprintf("; %d removed after their processes exited (by the kubelet or the runtime), accepted: %s", len(e.rep.Gone), listed(e.rep.Gone))
	}
	if len(e.j.Adopted) > 0 {
		ok += fmt.Sprintf("; %d adopted from the old tree", len(e.j.Adopted))
	}
	add(CheckPaths, bad, ok, walkErr)

	{
		bad = nil
		var serr error
		n := 0
		for _, c := range e.written() {
			if !have[c.rel] {
				continue
			}
			got, err := e.fs.ReadString(under(e.kubepods, c.rel), c.file)
			if err != nil {
				serr = errors.Join(serr, err)
				continue
			}
			n++
			if v, _ := normalize(c.file, got); v != c.want {
				bad = append(bad, fmt.Sprintf("%s: %q, was %q", e.h.Path(under(e.kubepods, c.rel), c.file), v, c.want))
			}
		}
		ok := fmt.Sprintf("%d set values read back as planned, every other setting is what mkdir inherits", n)
		if len(e.j.Refused) > 0 {
			ok += fmt.Sprintf("; %d the kernel refused (inherited values kept): %s", len(e.j.Refused), listed(e.rep.Refused))
		}
		if stage == checkRollback {
			ok = "the original cgroups kept their settings (never written)"
			bad, serr = nil, nil
		}
		add(CheckSettings, bad, ok, serr)
	}

	bad = nil
	alive, exited := 0, 0
	for _, n := range snap.Nodes {
		for i, p := range n.Pids {
			var start uint64
			if i < len(n.Starts) {
				start = n.Starts[i]
			}
			got, found := where[p]
			switch {
			case slices.Contains(got, n.Rel):
				alive++
			case found && e.alive(p, start):
				bad = append(bad, fmt.Sprintf("pid %d is in %s, was in %s", p, e.h.Path(under(e.kubepods, got[0])), e.h.Path(under(e.kubepods, n.Rel))))
			case !found && e.alive(p, start):
				bad = append(bad, fmt.Sprintf("pid %d is alive but no longer under %s (was in %s)", p, e.h.Path(e.kubepods), e.h.Path(under(e.kubepods, n.Rel))))
			default:
				exited++ // gone, or its pid now names another process
			}
		}
	}
	threads, tbad, terr := e.threadsInPlace(have)
	bad = append(bad, tbad...)
	ok = fmt.Sprintf("%d processes in the same relative cgroup, %d exited meanwhile", alive, exited)
	if threads > 0 {
		ok += fmt.Sprintf("; %d threads apart from their process kept their cgroup", threads)
	}
	if len(snap.Regrouped) > 0 {
		ok += "; regrouped: " + listed(snap.Regrouped)
	}
	add(CheckPids, bad, ok, errors.Join(readErr, terr))

	{
		tempLeft, err := exists(e.h, e.temp)
		bad = nil
		if tempLeft {
			bad = []string{e.h.Path(e.temp) + " still exists"}
		}
		add(CheckNoTemp, bad, e.h.Path(e.temp)+" is gone", err)
	}
	if stage != checkRollback {
		ino, err := inode(e.h, e.kubepods)
		bad = nil
		if err == nil && (ino == snap.Inode || ino != e.j.FreshInode) {
			bad = []string{fmt.Sprintf("%s has inode %d: not the fresh tree (%d)", e.h.Path(e.kubepods), ino, e.j.FreshInode)}
		}
		add(CheckNewDir, bad, fmt.Sprintf("%s is the fresh tree (inode %d, the old one was %d)", e.h.Path(e.kubepods), ino, snap.Inode), err)
		as, err := inodeOrZero(e.h, e.aside)
		bad = nil
		ok := "the old tree is set aside at " + e.h.Path(e.aside)
		switch {
		case stage == checkSwap && as != snap.Inode:
			bad = []string{fmt.Sprintf("%s is not the old tree (inode %d, planned %d)", e.h.Path(e.aside), as, snap.Inode)}
		case stage == checkCleanup && as != 0:
			bad = []string{e.h.Path(e.aside) + " still exists"}
		case stage == checkCleanup:
			ok = "the old tree is removed"
		}
		add(CheckOldTree, bad, ok, err)
	}
	return checks
}

// setting is one value the plan wrote on a fresh cgroup.
type setting struct{ rel, file, want string }

// written lists the settings the build wrote: those that differ from what
// the cgroup inherits at mkdir, minus the ones the kernel refused.
func (e *Engine) written() []setting {
	var out []setting
	snap := e.j.Snapshot
	for _, n := range snap.Nodes {
		parent := snap.Root
		if n.Rel != "" {
			parent = snap.Nodes[snap.index(parentRel(n.Rel))].Settings
		}
		inh := inherited(parent, n.Settings)
		a, b := n.Settings.fields(), inh.fields()
		for i := range a {
			if *a[i].val == "" || *a[i].val == *b[i].val || slices.Contains(e.j.Refused, under(n.Rel, a[i].file)) {
				continue
			}
			out = append(out, setting{n.Rel, a[i].file, *a[i].val})
		}
	}
	return out
}

// threadsInPlace checks the threads that sat apart from their process.
func (e *Engine) threadsInPlace(have map[string]bool) (int, []string, error) {
	n, bad := 0, []string(nil)
	var errs error
	for _, node := range e.j.Snapshot.Nodes {
		if len(node.Threads) == 0 || !have[node.Rel] {
			continue
		}
		tids, err := e.fs.Tasks(under(e.kubepods, node.Rel))
		if err != nil {
			errs = errors.Join(errs, err)
			continue
		}
		for _, t := range node.Threads {
			switch {
			case slices.Contains(tids, t):
				n++
			case e.alive(t, 0):
				bad = append(bad, fmt.Sprintf("thread %d is not in %s", t, e.h.Path(under(e.kubepods, node.Rel))))
			}
		}
	}
	return n, bad, errs
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

// procsOf reads cgroup.procs of every cgroup in rels, in parallel (the
// reads are independent; this is the final walk's cost).
func (e *Engine) procsOf(rels []string) ([][]int, []bool, error) {
	lists, gone := make([][]int, len(rels)), make([]bool, len(rels))
	err := e.fs.parallel(len(rels), func(cw cgfs, i int) (err error) {
		lists[i], err = cw.Procs(rels[i])
		if errors.Is(err, fs.ErrNotExist) {
			gone[i], err = true, nil
		}
		return err
	})
	return lists, gone, err
}

// plannedAlive reports whether a process the plan put in cgroup rel, or in
// a cgroup below it, is still alive.
func (e *Engine) plannedAlive(rel string) bool {
	for _, n := range e.j.Snapshot.Nodes {
		if n.Rel != rel && !strings.HasPrefix(n.Rel, rel+"/") && rel != "" {
			continue
		}
		for i, p := range n.Pids {
			var start uint64
			if i < len(n.Starts) {
				start = n.Starts[i]
			}
			if e.alive(p, start) {
				return true
			}
		}
	}
	return false
}
