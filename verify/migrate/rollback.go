package migrate

import (
	"fmt"
	"time"
)

// Rollback returns every process to the original layout and removes the
// temporary tree. Before the old tree was removed this is exactly the
// original state (same directories); after, the tree is rebuilt with the
// same paths and settings (the old directories cannot come back).
func (e *Engine) Rollback() (*Report, error) {
	start := time.Now()
	j, err := loadJournal(e.cfg.StateDir)
	if err != nil {
		return nil, &RunError{Err: err}
	}
	if j == nil || j.Phase.terminal() {
		e.rep.Outcome = OutcomeNothingToRollBack
		switch {
		case j == nil:
			e.rep.Message = "no migration journal in " + e.cfg.StateDir + ": nothing to roll back"
		case j.Phase == PhaseDone:
			e.rep.Message = "the migration finished (journal " + journalPath(e.cfg.StateDir) + "); its old tree is gone and the layout is the original one: nothing to roll back"
		default:
			e.rep.Message = "the last migration was already rolled back: nothing to do"
		}
		return &e.rep, nil
	}
	if err := e.preflight(); err != nil {
		return nil, e.failPreflight(err, j, false)
	}
	e.j = j
	e.rep.ResumedFrom = j.Phase
	e.rep.Cgroups, e.rep.Processes = j.Snapshot.Counts()
	oldKept, err := e.oldTreeIntact()
	if err != nil {
		return nil, e.fail(err, false)
	}
	if !j.RollingBack {
		j.RollingBack = true
		if err := saveJournal(e.cfg.StateDir, j); err != nil {
			return nil, e.fail(err, false)
		}
	}
	if err := e.rollback(); err != nil {
		return nil, e.fail(err, false)
	}
	e.countMoves()
	e.rep.Outcome = OutcomeRolledBack
	if oldKept {
		e.rep.Message = fmt.Sprintf("rolled back from phase %s: every process is back in the original %s tree", j.Phase, e.h.Path(e.kubepods))
	} else {
		e.rep.Message = fmt.Sprintf("rolled back from phase %s: the old tree was already removed, so %s was rebuilt with the same paths and settings and every process is back", j.Phase, e.h.Path(e.kubepods))
	}
	e.rep.Duration = time.Since(start)
	return &e.rep, nil
}

func (e *Engine) rollback() error {
	if err := e.buildTree(e.kubepods); err != nil {
		return err
	}
	// Temp directories that were never created hold nothing to move back.
	e.tolerateMissing = true
	if err := e.moveBack(); err != nil {
		return err
	}
	if err := e.removeTree(e.temp, e.kubepods, false); err != nil {
		return err
	}
	e.rep.Checks = e.invariants(false)
	if err := checksError(e.rep.Checks); err != nil {
		return err
	}
	return e.record(PhaseRolledBack)
}

// oldTreeIntact reports whether the original kubepods tree is still
// complete: its removal starts only after PhaseMovedOut and goes leaf
// first, so it started exactly when a planned cgroup is missing.
func (e *Engine) oldTreeIntact() (bool, error) {
	if e.j.Phase.reached(PhaseOldRemoved) {
		return false, nil
	}
	for _, n := range e.j.Snapshot.Nodes {
		if ok, err := exists(e.h, under(e.kubepods, n.Rel)); err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}
