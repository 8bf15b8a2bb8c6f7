package migrate

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nokmem/nokmem/verify/memcg"
)

// buildTree creates every snapshot cgroup below prefix top-down (mkdir is
// skipped where a directory exists) and copies its settings right after
// creating it, before its children exist, as use_hierarchy requires.
func (e *Engine) buildTree(prefix string) error {
	for _, n := range e.j.Snapshot.Nodes {
		rel := under(prefix, n.Rel)
		if err := e.h.Mkdir(rel); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		res, err := applySettings(e.h, rel, n.Settings)
		e.rep.SettingWrites += res.Writes
		for _, f := range res.Refused {
			e.j.refuse(n.Rel, f)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// removeTree removes the tree at prefix leaf first. Before each rmdir any
// process still there is swept into the same relative path under sweepTo
// (processes cannot be lost: rmdir fails with EBUSY while tasks remain).
// A directory that is not in the snapshot is never removed. forceEmpty asks
// the kernel to reclaim (3.10: reparent) page-cache charges before rmdir.
func (e *Engine) removeTree(prefix, sweepTo string, forceEmpty bool) error {
	ok, err := exists(e.h, prefix)
	if err != nil || !ok {
		return err
	}
	all, err := e.h.Walk(prefix)
	if err != nil {
		return err
	}
	known := make(map[string]bool, len(e.j.Snapshot.Nodes))
	for _, n := range e.j.Snapshot.Nodes {
		known[under(prefix, n.Rel)] = true
	}
	for _, rel := range all {
		if !known[rel] {
			return fmt.Errorf("%s appeared after the plan was made; not removing it (move it away or remove it, then rerun)", e.h.Path(rel))
		}
	}
	for i := len(all) - 1; i >= 0; i-- {
		rel := all[i]
		dst := sweepTo + rel[len(prefix):]
		if err := e.removeOne(rel, dst, forceEmpty); err != nil {
			return err
		}
	}
	return nil
}

// rmdirAttempts bounds the EBUSY retries of one rmdir; each retry first
// sweeps the cgroup's processes again.
const rmdirAttempts = 8

func (e *Engine) removeOne(rel, sweepTo string, forceEmpty bool) error {
	var last error
	for attempt := 0; attempt < rmdirAttempts; attempt++ {
		if attempt > 0 {
			e.rep.BusyRetries++
			time.Sleep(time.Duration(1<<attempt) * time.Millisecond)
		}
		if err := e.mv.drain(rel, sweepTo, true); err != nil {
			return err
		}
		if forceEmpty {
			err := e.h.Write(rel, memcg.ForceEmpty, "0")
			switch {
			case errors.Is(err, os.ErrNotExist):
			case errors.Is(err, errBusy):
				last = err
				continue
			case err != nil:
				return err
			}
		}
		err := e.h.Rmdir(rel)
		switch {
		case err == nil, errors.Is(err, os.ErrNotExist):
			return nil
		case errors.Is(err, errBusy):
			last = err
		default:
			return err
		}
	}
	return fmt.Errorf("still busy after %d attempts: %w", rmdirAttempts, last)
}
