package migrate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// ErrRollbackAfterSwap refuses a rollback once the fresh tree is at
// kubepods: every process and setting is already in place there, and going
// back would move every process into the kmem-active old tree.
var ErrRollbackAfterSwap = errors.New("nothing to roll back to without moving every process into the kmem-active old tree")

// Rollback returns every process to the original (kmem-active) tree and
// removes the fresh one, from any phase before swapped. The message says
// that the processes are back in a kmem-active tree.
func (e *Engine) Rollback() (*Report, error) {
	start := time.Now()
	j, err := loadJournal(e.cfg.StateDir, e.kubepods)
	if err != nil {
		return nil, &RunError{Err: err}
	}
	if j == nil || j.Phase.Terminal() {
		e.rep.Outcome = OutcomeNothingToRollBack
		switch {
		case j == nil:
			e.rep.Message = "no migration journal in " + e.cfg.StateDir + ": nothing to roll back"
		case j.Phase == PhaseDone:
			e.rep.Message = "the migration finished (journal " + journalPath(e.cfg.StateDir) + "); the layout is the original one on a fresh tree: nothing to roll back"
		default:
			e.rep.Message = "the last migration was already rolled back: nothing to do"
		}
		return &e.rep, nil
	}
	e.j = j
	from := j.Phase
	e.rep.ResumedFrom = from
	e.rep.Cgroups, e.rep.Processes = j.Snapshot.Counts()
	if from == PhaseSwapped && !j.RollingBack {
		re := e.runErr(fmt.Errorf("the fresh tree is already at %s with every planned process and setting (phase swapped): %w", e.h.Path(e.kubepods), ErrRollbackAfterSwap))
		re.Next = "run `verify migrate` to finish: it removes the old tree and may run while the kubelet runs"
		return nil, re
	}
	if err := e.preflight(); err != nil {
		return nil, e.runErr(err)
	}
	if !j.RollingBack {
		j.RollingBack = true
		if err := saveJournal(e.cfg.StateDir, j); err != nil {
			return nil, e.runErr(err)
		}
	}
	if err := e.rollback(); err != nil {
		return nil, e.fail(fmt.Errorf("roll back: %w", err), false)
	}
	e.countMoves()
	e.rep.Outcome = OutcomeRolledBack
	e.rep.Message = fmt.Sprintf("rolled back from phase %s: every process is back in the original %s tree, which is still kmem-active (its memcg IDs will leak at rmdir until a migration finishes)",
		from, e.h.Path(e.kubepods))
	e.rep.Duration = time.Since(start)
	return &e.rep, nil
}

func (e *Engine) rollback() error {
	old := e.j.Snapshot.Inode
	kp, err := inodeOrZero(e.h, e.kubepods)
	if err != nil {
		return err
	}
	as, err := inodeOrZero(e.h, e.aside)
	if err != nil {
		return err
	}
	switch {
	case kp == old:
	case kp == 0 && as == old:
		if err := e.fs.Rename(e.aside, e.kubepods); err != nil {
			return err
		}
	case kp != 0 && kp == e.j.FreshInode && as == old:
		// Swapped before a kill, not yet recorded: undo the swap.
		if err := e.fs.Rename(e.kubepods, e.temp); err != nil {
			return err
		}
		if err := e.fs.Rename(e.aside, e.kubepods); err != nil {
			return err
		}
	default:
		return fmt.Errorf("the old tree is neither at %s nor at %s (inodes %d and %d, planned %d): nothing to roll back into", e.h.Path(e.kubepods), e.h.Path(e.aside), kp, as, old)
	}
	if err := e.repair(e.kubepods); err != nil {
		return err
	}
	tmp, err := inodeOrZero(e.h, e.temp)
	if err != nil {
		return err
	}
	if tmp != 0 {
		if e.j.FreshInode != 0 && tmp != e.j.FreshInode {
			return fmt.Errorf("%s is not the fresh tree this journal built (inode %d, journal: %d): not touching it", e.h.Path(e.temp), tmp, e.j.FreshInode)
		}
		if err := e.moveTree(e.temp, e.kubepods, false); err != nil {
			return err
		}
		if err := e.removeSweep(e.temp, e.kubepods); err != nil {
			return err
		}
	}
	e.rep.Checks = e.invariants(checkRollback)
	if err := checksError(e.rep.Checks); err != nil {
		return err
	}
	return e.record(PhaseRolledBack)
}

// Abandon sets the journal aside (renamed next to itself) without touching
// any cgroup, and says what exists on the node. It is the way out of a
// rollback or migration that cannot finish, and of a journal that cannot be
// trusted. A later migrate removes an empty leftover temporary or set-aside
// tree and names one that holds processes.
func (e *Engine) Abandon() (*Report, error) {
	if _, err := os.Stat(journalPath(e.cfg.StateDir)); errors.Is(err, fs.ErrNotExist) {
		e.rep.Outcome = OutcomeNothingToRollBack
		e.rep.Message = "no migration journal in " + e.cfg.StateDir + ": nothing to abandon"
		return &e.rep, nil
	}
	phase := Phase("unreadable")
	if j, err := loadJournal(e.cfg.StateDir, e.kubepods); err == nil && j != nil {
		e.j, phase = j, j.Phase
	}
	to, err := retireJournal(e.cfg.StateDir, "abandoned")
	if err != nil {
		return nil, &RunError{Err: err}
	}
	e.rep.Outcome = OutcomeAbandoned
	e.rep.Message = fmt.Sprintf("the journal (phase %s) was set aside as %s; no cgroup was changed; on the node: %s; "+
		"a new `verify migrate` removes an empty leftover temporary or set-aside tree and names one that still holds processes",
		phase, to, e.describe())
	return &e.rep, nil
}
