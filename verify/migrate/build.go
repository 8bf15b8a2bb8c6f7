package migrate

import (
	"errors"
	"fmt"
	"os"

	"github.com/nokmem/nokmem/verify/memcg"
)

// modelChecks is how many freshly created cgroups are read back to check
// the kernel's inheritance at mkdir against the model (inherited) before
// the model is trusted for the rest.
const modelChecks = 2

// build creates the fresh tree under the temporary name top-down with
// every setting, each right after its mkdir and before its children exist
// (use_hierarchy requires it). A fresh cgroup is not read before writing:
// what it inherits is known. A cgroup that already exists (a resumed run)
// is read. move_charge_at_immigrate is armed where processes will arrive.
func (e *Engine) build() error {
	eff := map[string]Settings{}
	model, checked := true, 0
	for i, n := range e.j.Snapshot.Nodes {
		rel := under(e.temp, n.Rel)
		created := true
		if err := e.fs.Mkdir(rel); errors.Is(err, os.ErrExist) {
			created = false
		} else if err != nil {
			return err
		}
		if i == 0 {
			if err := e.noteFresh(rel); err != nil {
				return err
			}
		}
		parent := e.j.Snapshot.Root
		if n.Rel != "" {
			parent = eff[parentRel(n.Rel)]
		}
		want := inherited(parent, n.Settings)
		cur := want
		if !created || !model || checked < modelChecks {
			got, err := readSettings(e.fs, rel, parent.UseHierarchy != "1")
			if err != nil {
				return err
			}
			if got.UseHierarchy == "" {
				got.UseHierarchy = want.UseHierarchy
			}
			if created && model {
				checked++
				if got != want {
					model = false
					e.cfg.Logger.Info("a fresh cgroup does not inherit as modelled; reading every fresh cgroup before writing", "cgroup", e.h.Path(rel), "got", got, "model", want)
				}
			}
			cur = got
		}
		st, res, err := applySettings(e.fs, rel, n.Settings, cur)
		e.rep.SettingWrites += res.Writes
		for _, f := range res.Refused {
			e.j.refuse(n.Rel, f)
		}
		if err != nil {
			return err
		}
		eff[n.Rel] = st
		if len(n.Pids) > 0 || len(n.Threads) > 0 {
			if _, err := e.mv.arm(rel); err != nil {
				return err
			}
		}
	}
	e.j.MoveCharge = e.mv.moveCharge != nil && *e.mv.moveCharge
	return nil
}

// noteFresh records the fresh tree's root inode, or checks it on a rerun.
func (e *Engine) noteFresh(rel string) error {
	ino, err := inode(e.h, rel)
	if err != nil {
		return err
	}
	switch e.j.FreshInode {
	case 0:
		// Recorded with phase built; a rerun before that accepts the
		// temporary tree it finds (it can only be this plan's: a fresh run
		// removes or refuses a leftover before planning).
		e.j.FreshInode = ino
		return nil
	case ino:
		return nil
	}
	return fmt.Errorf("%s is not the fresh tree this journal started (inode %d, journal: %d)", e.h.Path(rel), ino, e.j.FreshInode)
}

// moveIn moves every process into the fresh tree and restores
// move_charge_at_immigrate where it was armed.
func (e *Engine) moveIn() error {
	if err := e.moveTree(e.kubepods, e.temp, e.deferChecks); err != nil {
		return err
	}
	return e.disarm(e.temp)
}

// disarm writes back the planned move_charge_at_immigrate where build
// armed it (cgroups that received processes).
func (e *Engine) disarm(prefix string) error {
	if !e.j.MoveCharge {
		return nil
	}
	for _, n := range e.j.Snapshot.Nodes {
		mc := n.Settings.MoveCharge
		if mc == "" || mc == "3" || (len(n.Pids) == 0 && len(n.Threads) == 0) {
			continue
		}
		if err := e.fs.Write(under(prefix, n.Rel), memcg.MoveCharge, mc); err != nil {
			return err
		}
	}
	return nil
}

// setAside adopts cgroups someone created in the old tree after the plan
// (they get a fresh twin and their processes move), then renames the old
// kubepods to the set-aside name.
func (e *Engine) setAside() error {
	old := e.j.Snapshot.Inode
	kp, err := inodeOrZero(e.h, e.kubepods)
	if err != nil {
		return err
	}
	if kp == 0 {
		if as, err := inodeOrZero(e.h, e.aside); err != nil || as == old {
			return err // set aside before a kill
		}
		return vanishedErr(e.h, e.kubepods)
	}
	if kp != old {
		return fmt.Errorf("%s is no longer the planned tree (inode %d, planned %d)", e.h.Path(e.kubepods), kp, old)
	}
	if e.rep.ResumedFrom == "" {
		// A fresh run: the kubelet was stopped before the plan, so no pod
		// appeared since; anything someone else put in the old tree is
		// swept into kubepods by the cleanup. A rerun, after an
		// interruption of unknown length, repairs and adopts here.
		return e.fs.Rename(e.kubepods, e.aside)
	}
	if err := e.repairFresh(); err != nil {
		return err
	}
	all, err := e.fs.Walk(e.kubepods)
	if err != nil {
		return err
	}
	for _, abs := range all[1:] {
		rel := abs[len(e.kubepods)+1:]
		if e.j.Snapshot.index(rel) < 0 {
			if err := e.adopt(rel); err != nil {
				return fmt.Errorf("adopt %s: %w", e.h.Path(abs), err)
			}
		}
	}
	if ok, err := exists(e.h, e.aside); err != nil {
		return err
	} else if ok {
		return fmt.Errorf("%s exists and is not the old tree: move it away, then rerun", e.h.Path(e.aside))
	}
	return e.fs.Rename(e.kubepods, e.aside)
}

// repairFresh recreates planned cgroups that someone removed from the
// fresh tree before it is put in place.
func (e *Engine) repairFresh() error { return e.repair(e.temp) }

// repair recreates, below prefix, planned cgroups that someone removed
// (read, then write what differs), so no planned setting is lost.
func (e *Engine) repair(prefix string) error {
	all, err := e.fs.Walk(prefix)
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, a := range all {
		have[a] = true
	}
	for _, n := range e.j.Snapshot.Nodes {
		rel := under(prefix, n.Rel)
		if have[rel] {
			continue
		}
		if err := e.fs.Mkdir(rel); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		cur, err := readSettings(e.fs, rel, true)
		if err != nil {
			return err
		}
		if _, _, err := applySettings(e.fs, rel, n.Settings, cur); err != nil {
			return err
		}
		e.cfg.Logger.Info("recreated a planned cgroup someone removed", "cgroup", e.h.Path(rel))
	}
	return nil
}

// adopt adds cgroup rel (relative to kubepods), created in the old tree
// after the plan, to the plan: a fresh twin with its settings, and its
// processes moved there.
func (e *Engine) adopt(rel string) error {
	src, dst := under(e.kubepods, rel), under(e.temp, rel)
	parent := e.j.Snapshot.Nodes[e.j.Snapshot.index(parentRel(rel))].Settings
	st, err := readSettings(e.fs, src, parent.UseHierarchy != "1")
	if err != nil {
		return err
	}
	if st.UseHierarchy == "" {
		st.UseHierarchy = parent.UseHierarchy
	}
	if err := e.fs.Mkdir(dst); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	cur, err := readSettings(e.fs, dst, parent.UseHierarchy != "1")
	if err != nil {
		return err
	}
	if cur.UseHierarchy == "" {
		cur.UseHierarchy = st.UseHierarchy
	}
	if _, res, err := applySettings(e.fs, dst, st, cur); err != nil {
		return err
	} else {
		e.rep.SettingWrites += res.Writes
		for _, f := range res.Refused {
			e.j.refuse(rel, f)
		}
	}
	e.j.Snapshot.Nodes = append(e.j.Snapshot.Nodes, Node{Rel: rel, Settings: st})
	e.j.Adopted = append(e.j.Adopted, rel)
	if err := saveJournal(e.cfg.StateDir, e.j); err != nil {
		return err
	}
	pids, err := e.mv.drain(src, dst, true)
	if err != nil {
		return err
	}
	e.cfg.Logger.Info("adopted a cgroup created in the old tree after the plan", "cgroup", e.h.Path(src), "processes", len(pids))
	e.countMoves()
	return nil
}

// swap renames the fresh tree to kubepods and checks the result.
func (e *Engine) swap() error {
	kp, err := inodeOrZero(e.h, e.kubepods)
	if err != nil {
		return err
	}
	switch kp {
	case e.j.FreshInode:
	case 0:
		if err := e.fs.Rename(e.temp, e.kubepods); err != nil {
			return err
		}
	default:
		return fmt.Errorf("a new %s (inode %d) appeared after the old tree was set aside: is a kubelet running? "+
			"stop it, move what it created into %s, remove it, then rerun", e.h.Path(e.kubepods), kp, e.h.Path(e.temp))
	}
	if e.deferChecks {
		return nil
	}
	e.rep.Checks = e.invariants(checkSwap)
	return checksError(e.rep.Checks)
}
