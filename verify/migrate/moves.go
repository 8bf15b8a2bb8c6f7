package migrate

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"syscall"

	"github.com/nokmem/nokmem/verify/memcg"
)

// ErrVanished marks a cgroup that disappeared while the migration ran:
// something else is changing the tree.
var ErrVanished = errors.New("cgroup disappeared during the migration")

// VanishedError names the cgroup that disappeared.
type VanishedError struct {
	// Rel is the cgroup relative to the memory root, Path its directory.
	Rel, Path string
}

func (e *VanishedError) Error() string { return fmt.Sprintf("%v: %s", ErrVanished, e.Path) }

// Is makes errors.Is(err, ErrVanished) true.
func (e *VanishedError) Is(target error) bool { return target == ErrVanished }

func vanishedErr(h memcg.Hierarchy, rel string) error {
	return &VanishedError{Rel: rel, Path: h.Path(rel)}
}

// errBusy is what rmdir and force_empty return while tasks or children remain.
var errBusy = syscall.EBUSY

// maxDrainRounds bounds the re-reads of a source's cgroup.procs. A process
// forks into its own cgroup, so once it is moved its children follow it; a
// source that keeps refilling for this many rounds means something else is
// moving processes in.
const maxDrainRounds = 1000

// mover moves processes between cgroups and counts what it did.
type mover struct {
	h   memcg.Hierarchy
	log *slog.Logger
	// moveCharge is nil until the first destination told whether the kernel
	// accepts move_charge_at_immigrate=3 (removed in 6.13).
	moveCharge *bool
	moved      int
	exited     int
}

// prepareDest asks the kernel to move charges along with the tasks that
// immigrate into rel, where the kernel still supports it.
func (m *mover) prepareDest(rel string) error {
	if m.moveCharge != nil && !*m.moveCharge {
		return nil
	}
	err := m.h.Write(rel, memcg.MoveCharge, "3")
	switch {
	case err == nil:
		if m.moveCharge == nil {
			m.moveCharge = ptr(true)
		}
		return nil
	case errors.Is(err, syscall.EINVAL) && m.moveCharge == nil:
		m.moveCharge = ptr(false)
		m.log.Info("kernel refuses move_charge_at_immigrate=3 (removed in 6.13); moving tasks without their charges", "cgroup", m.h.Path(rel))
		return nil
	case errors.Is(err, fs.ErrNotExist):
		if verr := m.vanished(rel); verr != nil {
			return verr
		}
		m.moveCharge = ptr(false) // the cgroup is there, the file is not
		return nil
	}
	return err
}

// vanished returns ErrVanished when cgroup rel does not exist (or the error
// from looking), nil when it does.
func (m *mover) vanished(rel string) error {
	ok, err := exists(m.h, rel)
	switch {
	case err != nil:
		return err
	case !ok:
		return vanishedErr(m.h, rel)
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

// drain moves every process of src into dst and re-reads src until it is
// empty, so tasks forked meanwhile are caught. A process that exits in
// between (ESRCH) is fine. ENOMEM means dst cannot take the charge and is
// reported with both cgroups and the pid. A missing src is ErrVanished
// unless tolerate is set (a resumed run after such an error).
func (m *mover) drain(src, dst string, tolerate bool) error {
	for round := 0; round < maxDrainRounds; round++ {
		pids, err := m.h.Procs(src)
		if errors.Is(err, fs.ErrNotExist) {
			if tolerate {
				return nil
			}
			return vanishedErr(m.h, src)
		}
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		for _, pid := range pids {
			err := m.h.Move(dst, pid)
			switch {
			case err == nil:
				m.moved++
			case errors.Is(err, syscall.ESRCH):
				m.exited++
			case errors.Is(err, syscall.ENOMEM):
				return fmt.Errorf("move pid %d from %s to %s: the destination cannot take its memory charge: %w",
					pid, m.h.Path(src), m.h.Path(dst), err)
			case errors.Is(err, fs.ErrNotExist):
				if verr := m.vanished(dst); verr != nil {
					return verr
				}
				return err
			default:
				return fmt.Errorf("move pid %d from %s: %w", pid, m.h.Path(src), err)
			}
		}
	}
	return fmt.Errorf("drain %s: still not empty after %d rounds (is something moving processes in?)", m.h.Path(src), maxDrainRounds)
}

// moveAll moves every process from the src tree to the same relative path
// in the dst tree, with move_charge_at_immigrate=3 on the destinations where
// the kernel accepts it, then checks in a second pass that every source
// stayed empty.
func (e *Engine) moveAll(src, dst string) error {
	for _, n := range e.j.Snapshot.Nodes {
		if err := e.mv.prepareDest(under(dst, n.Rel)); err != nil {
			return err
		}
	}
	for pass := 0; pass < 2; pass++ {
		for _, n := range e.j.Snapshot.Nodes {
			if err := e.mv.drain(under(src, n.Rel), under(dst, n.Rel), e.tolerateMissing || e.j.vanished(n.Rel)); err != nil {
				return err
			}
		}
	}
	e.countMoves()
	return nil
}

func (e *Engine) countMoves() {
	e.rep.Moved, e.rep.Exited = e.mv.moved, e.mv.exited
	e.rep.MoveCharge = e.mv.moveCharge != nil && *e.mv.moveCharge
}

// moveBack moves every process into the new kubepods tree and restores the
// original move_charge_at_immigrate values there.
func (e *Engine) moveBack() error {
	if err := e.moveAll(e.temp, e.kubepods); err != nil {
		return err
	}
	for _, n := range e.j.Snapshot.Nodes {
		mc := n.Settings.MoveCharge
		if mc == "" {
			continue
		}
		rel := under(e.kubepods, n.Rel)
		cur, err := e.h.ReadString(rel, memcg.MoveCharge)
		if err != nil {
			return err
		}
		if cur != mc {
			if err := e.h.Write(rel, memcg.MoveCharge, mc); err != nil {
				return err
			}
		}
	}
	return nil
}
