package migrate

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"
)

// Cleanup removes the set-aside old tree once the critical part is done
// (journal phase swapped): leaf first, rmdir only (3.10 reparents the page
// charges at rmdir; force_empty would only sleep). The kubelet may run
// meanwhile. A process found in the old tree is moved to the same path
// under kubepods and named in the report; a cgroup created there is
// removed the same way. Killed at any point, a rerun of Cleanup (or of
// Migrate) finishes it.
func (e *Engine) Cleanup() (*Report, error) {
	start := time.Now()
	j, err := loadJournal(e.cfg.StateDir, e.kubepods)
	if err != nil {
		return nil, &RunError{Err: err}
	}
	if j == nil || j.Phase.Terminal() {
		e.rep.Outcome = OutcomeNothingToClean
		e.rep.Message = "no migration waits for its cleanup in " + e.cfg.StateDir
		if j != nil {
			e.rep.Phase = j.Phase
			e.rep.Message = fmt.Sprintf("the journal %s is finished (phase %s): nothing to clean", journalPath(e.cfg.StateDir), j.Phase)
		}
		return &e.rep, nil
	}
	e.j = j
	if j.RollingBack || j.Phase != PhaseSwapped {
		return nil, e.runErr(fmt.Errorf("the critical part is not finished (journal phase %s): the old tree cannot be removed yet", j.Phase))
	}
	e.rep.ResumedFrom = j.Phase
	e.rep.Cgroups, e.rep.Processes = j.Snapshot.Counts()
	if kp, err := inodeOrZero(e.h, e.kubepods); err != nil || kp != j.FreshInode {
		return nil, e.runErr(errors.Join(err, fmt.Errorf("%s is not the fresh tree this journal put there (inode %d, journal: %d): not removing anything", e.h.Path(e.kubepods), kp, j.FreshInode)))
	}
	if err := e.removeOld(); err != nil {
		return nil, e.fail(fmt.Errorf("remove the old tree: %w", err), false)
	}
	e.rep.Checks = e.invariants(checkCleanup)
	if err := checksError(e.rep.Checks); err != nil {
		return nil, e.fail(err, false)
	}
	if err := e.record(PhaseDone); err != nil {
		return nil, e.fail(err, false)
	}
	e.rep.Outcome = OutcomeCleaned
	e.rep.Message = fmt.Sprintf("removed the old tree %s (%d cgroups)", e.h.Path(e.aside), e.rep.Removed)
	e.rep.Cleanup = time.Since(start)
	e.rep.Duration = e.rep.Cleanup
	return &e.rep, nil
}

// removeOld removes the set-aside tree, which must be the planned old tree.
func (e *Engine) removeOld() error {
	ino, err := inodeOrZero(e.h, e.aside)
	switch {
	case err != nil:
		return err
	case ino == 0:
		return nil // removed before a kill
	case ino != e.j.Snapshot.Inode:
		return fmt.Errorf("%s is not the old tree (inode %d, planned %d): not removing it", e.h.Path(e.aside), ino, e.j.Snapshot.Inode)
	}
	return e.removeSweep(e.aside, e.kubepods)
}

// progressEvery is how often the removal logs its progress.
const progressEvery = 50

// removeSweep removes the tree at top leaf first. A cgroup that is busy
// has its processes moved to the same relative path under sweepTo (created
// if needed) and its new children removed first; it is retried a bounded
// number of times, and a failure names what keeps it busy.
//
// The planned cgroups are removed in reverse plan order without a walk
// (top is a planned tree); anything else found in them is walked then.
func (e *Engine) removeSweep(top, sweepTo string) error {
	nodes := e.j.Snapshot.Nodes
	for i := len(nodes) - 1; i >= 0; i-- {
		rel := under(top, nodes[i].Rel)
		if err := e.removeOne(top, sweepTo, rel); err != nil {
			return err
		}
		e.rep.Removed++
		done := len(nodes) - i
		if e.cfg.Hooks.Removed != nil {
			e.cfg.Hooks.Removed(rel, done, len(nodes))
		}
		if done%progressEvery == 0 || done == len(nodes) {
			e.cfg.Logger.Info("removing", "tree", e.h.Path(top), "removed", done, "of", len(nodes))
		}
	}
	return nil
}

// removeBelow removes the subtree at sub (inside top) leaf first.
func (e *Engine) removeBelow(top, sweepTo, sub string) error {
	all, err := e.fs.Walk(sub)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for i := len(all) - 1; i >= 0; i-- {
		if err := e.removeOne(top, sweepTo, all[i]); err != nil {
			return err
		}
		e.rep.Removed++
		done := len(all) - i
		if e.cfg.Hooks.Removed != nil {
			e.cfg.Hooks.Removed(all[i], done, len(all))
		}
		if done%progressEvery == 0 || done == len(all) {
			e.cfg.Logger.Info("removing", "tree", e.h.Path(sub), "removed", done, "of", len(all))
		}
	}
	return nil
}

// rmdirAttempts bounds the EBUSY retries of one rmdir.
const rmdirAttempts = 8

func (e *Engine) removeOne(top, sweepTo, rel string) error {
	sub := strings.TrimPrefix(strings.TrimPrefix(rel, top), "/")
	for attempt := 0; ; attempt++ {
		err := e.fs.Rmdir(rel)
		switch {
		case err == nil, errors.Is(err, os.ErrNotExist):
			return nil
		case !errors.Is(err, syscall.EBUSY):
			return err
		}
		kids, kerr := e.fs.Children(rel)
		if kerr != nil && !errors.Is(kerr, os.ErrNotExist) {
			return kerr
		}
		pids, perr := e.fs.Procs(rel)
		if perr != nil && !errors.Is(perr, os.ErrNotExist) {
			return perr
		}
		if attempt == rmdirAttempts {
			return fmt.Errorf("cannot remove %s: still busy after %d attempts (processes %v, child cgroups %v): "+
				"something keeps putting them there; stop it, move them out, then rerun", e.h.Path(rel), rmdirAttempts, pids, e.paths(kids))
		}
		for _, k := range kids {
			e.cfg.Logger.Info("a cgroup appeared in the tree being removed; removing it too", "cgroup", e.h.Path(k))
			if err := e.removeBelow(top, sweepTo, k); err != nil {
				return err
			}
		}
		if len(pids) > 0 {
			dst, err := e.ensurePath(top, sweepTo, sub)
			if err != nil {
				return err
			}
			moved, err := e.mv.drain(rel, dst, true)
			if err != nil {
				return fmt.Errorf("move the processes %v of %s to %s: %w", pids, e.h.Path(rel), e.h.Path(dst), err)
			}
			for _, p := range moved {
				e.rep.Swept = append(e.rep.Swept, fmt.Sprintf("pid %d from %s to %s", p, e.h.Path(rel), e.h.Path(dst)))
			}
			e.countMoves()
		}
		time.Sleep(time.Duration(1<<attempt) * time.Millisecond)
	}
}

// ensurePath returns sub under sweepTo, creating the missing cgroups with
// the settings of their twins under top.
func (e *Engine) ensurePath(top, sweepTo, sub string) (string, error) {
	if sub == "" {
		return sweepTo, nil
	}
	parts := strings.Split(sub, "/")
	for i := range parts {
		p := strings.Join(parts[:i+1], "/")
		dst := under(sweepTo, p)
		if ok, err := exists(e.h, dst); err != nil {
			return "", err
		} else if ok {
			continue
		}
		st, err := readSettings(e.fs, under(top, p), false)
		if err != nil {
			return "", err
		}
		if err := e.fs.Mkdir(dst); err != nil && !errors.Is(err, os.ErrExist) {
			return "", err
		}
		cur, err := readSettings(e.fs, dst, false)
		if err != nil {
			return "", err
		}
		if _, _, err := applySettings(e.fs, dst, st, cur); err != nil {
			return "", err
		}
	}
	return under(sweepTo, sub), nil
}

func (e *Engine) paths(rels []string) []string {
	out := make([]string, len(rels))
	for i, r := range rels {
		out[i] = e.h.Path(r)
	}
	return out
}
