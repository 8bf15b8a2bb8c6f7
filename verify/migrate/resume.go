package migrate

import (
	"fmt"
	"strings"
)

// treeInfo says what sits at one of the three paths of a migration.
type treeInfo struct {
	rel     string
	ino     uint64
	cgroups int
	procs   int
	err     error
}

// look reads what is at rel, counting processes when withProcs.
func (e *Engine) look(rel string, withProcs bool) treeInfo {
	t := treeInfo{rel: rel}
	if t.ino, t.err = inodeOrZero(e.h, rel); t.err != nil || t.ino == 0 {
		return t
	}
	all, err := e.h.Walk(rel)
	if err != nil {
		t.err = err
		return t
	}
	t.cgroups = len(all)
	if withProcs {
		for _, c := range all {
			pids, err := e.h.Procs(c)
			if err != nil {
				t.err = err
				return t
			}
			t.procs += len(pids)
		}
	}
	return t
}

func (e *Engine) name(t treeInfo) string {
	switch {
	case e.j == nil:
	case t.ino == e.j.Snapshot.Inode:
		return "the old (kmem-active) tree"
	case t.ino == e.j.FreshInode && t.ino != 0:
		return "the fresh tree"
	}
	return "a tree this journal does not know"
}

// describe says, read-only, what exists at the kubepods, temporary and
// set-aside paths: the truth a stopped run reports.
func (e *Engine) describe() string {
	var parts []string
	for _, rel := range []string{e.kubepods, e.temp, e.aside} {
		t := e.look(rel, rel != e.kubepods)
		switch {
		case t.err != nil:
			parts = append(parts, fmt.Sprintf("%s: cannot tell (%v)", e.h.Path(rel), t.err))
		case t.ino == 0:
			parts = append(parts, e.h.Path(rel)+" absent")
		case rel == e.kubepods:
			parts = append(parts, fmt.Sprintf("%s is %s (%d cgroups)", e.h.Path(rel), e.name(t), t.cgroups))
		default:
			parts = append(parts, fmt.Sprintf("%s is %s (%d cgroups, %d processes)", e.h.Path(rel), e.name(t), t.cgroups, t.procs))
		}
	}
	return strings.Join(parts, "; ")
}

// checkResume makes sure the trees on the node are the ones the journal
// describes before anything is touched. A journal whose kubepods was
// migrated by another run is stale: it is set aside and nothing else
// changes.
func (e *Engine) checkResume(j *Journal) (*Report, error) {
	e.j = j
	kp, err := inodeOrZero(e.h, e.kubepods)
	if err != nil {
		return nil, e.runErr(err)
	}
	tmp, err := inodeOrZero(e.h, e.temp)
	if err != nil {
		return nil, e.runErr(err)
	}
	as, err := inodeOrZero(e.h, e.aside)
	if err != nil {
		return nil, e.runErr(err)
	}
	old, fresh := j.Snapshot.Inode, j.FreshInode
	freshOK := tmp == 0 || fresh == 0 || tmp == fresh
	switch {
	case !freshOK && j.Phase != PhasePlanned:
		return nil, e.runErr(fmt.Errorf("%s is not the fresh tree this journal built (inode %d, journal: %d)", e.h.Path(e.temp), tmp, fresh))
	case kp == old && j.Phase != PhaseSetAside:
		return nil, nil
	case kp == 0 && as == old:
		return nil, nil // set aside, maybe before the journal said so
	case j.Phase == PhaseSetAside && as == old && kp == fresh && fresh != 0:
		return nil, nil // swapped, before the journal said so
	}
	if kp != 0 {
		if n, clean, err := kmemInactive(e.fs, e.kubepods); err == nil && clean {
			to, rerr := retireJournal(e.cfg.StateDir, "superseded")
			if rerr != nil {
				return nil, e.runErr(rerr)
			}
			e.rep.Outcome, e.rep.ResumedFrom = OutcomeAlreadyMigrated, j.Phase
			e.rep.Cgroups = n
			e.rep.Message = fmt.Sprintf("%s was migrated by another run (kmem off in all %d cgroups, inode %d, not the %d this journal planned): "+
				"this journal (phase %s) is stale and was set aside as %s; no cgroup was touched; on the node: %s",
				e.h.Path(e.kubepods), n, kp, old, j.Phase, to, e.describe())
			return &e.rep, nil
		}
	}
	return nil, e.runErr(fmt.Errorf("%s is not the tree this journal planned (inode %d; journal: old tree %d, fresh tree %d): someone else changed it; "+
		"nothing was touched", e.h.Path(e.kubepods), kp, old, fresh))
}

// leftovers handles a temporary or set-aside tree found by a fresh run
// (no unfinished journal here): an empty one is removed, one holding
// processes stops the run with the count and where to look.
func (e *Engine) leftovers() error {
	for _, rel := range []string{e.temp, e.aside} {
		t := e.look(rel, true)
		switch {
		case t.err != nil:
			return t.err
		case t.ino == 0:
			continue
		case t.procs > 0:
			return fmt.Errorf("%s exists with %d processes in %d cgroups, left by an interrupted migration whose journal is not in %s: "+
				"rerun with that run's --state-dir (verify detect lists unfinished journals and leftover trees), or move those processes out, then rerun",
				e.h.Path(rel), t.procs, t.cgroups, e.cfg.StateDir)
		}
		all, err := e.h.Walk(rel)
		if err != nil {
			return err
		}
		for i := len(all) - 1; i >= 0; i-- {
			if err := e.fs.Rmdir(all[i]); err != nil {
				return fmt.Errorf("remove the empty leftover %s: %w", e.h.Path(rel), err)
			}
		}
		e.cfg.Logger.Info("removed an empty leftover tree of an interrupted migration", "tree", e.h.Path(rel), "cgroups", len(all))
	}
	return nil
}
