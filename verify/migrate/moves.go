package migrate

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"syscall"
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

func vanishedErr(h interface {
	Path(string, ...string) string
}, rel string) error {
	return &VanishedError{Rel: rel, Path: h.Path(rel)}
}

// maxDrainRounds bounds the re-reads of a source's cgroup.procs. A process
// forks into its own cgroup, so once it is moved its children follow it; a
// source that keeps refilling for this many rounds means something else is
// moving processes in.
const maxDrainRounds = 1000

// mover moves processes between cgroups and counts what it did.
type mover struct {
	fs  cgfs
	log *slog.Logger
	// moveCharge is nil until the first destination told whether the kernel
	// accepts move_charge_at_immigrate=3 (removed in 6.13).
	moveCharge *bool
	moved      int
	exited     int
}

// arm asks the kernel to move charges along with the tasks that immigrate
// into rel, where it still supports it. It reports whether rel is armed.
func (m *mover) arm(rel string) (bool, error) {
	if m.moveCharge != nil && !*m.moveCharge {
		return false, nil
	}
	err := m.fs.Write(rel, "memory.move_charge_at_immigrate", "3")
	switch {
	case err == nil:
		m.moveCharge = ptr(true)
		return true, nil
	case errors.Is(err, syscall.EINVAL) && m.moveCharge == nil:
		m.moveCharge = ptr(false)
		m.log.Info("kernel refuses move_charge_at_immigrate=3 (removed in 6.13); moving tasks without their charges", "cgroup", m.fs.Path(rel))
		return false, nil
	case errors.Is(err, fs.ErrNotExist):
		if verr := m.vanished(rel); verr != nil {
			return false, verr
		}
		m.moveCharge = ptr(false) // the cgroup is there, the file is not
		return false, nil
	}
	return false, err
}

// vanished returns ErrVanished when cgroup rel does not exist (or the error
// from looking), nil when it does.
func (m *mover) vanished(rel string) error {
	ok, err := m.fs.Exists(rel)
	switch {
	case err != nil:
		return err
	case !ok:
		return vanishedErr(m.fs, rel)
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

// move moves one process (or, with thread, one thread) into dst; a process
// that is gone (ESRCH) is counted as exited.
func (m *mover) move(src, dst string, pid int, thread bool) error {
	var err error
	if thread {
		err = m.fs.MoveThread(dst, pid)
	} else {
		err = m.fs.Move(dst, pid)
	}
	switch {
	case err == nil:
		m.moved++
	case errors.Is(err, syscall.ESRCH):
		m.exited++
	case errors.Is(err, syscall.ENOMEM):
		return fmt.Errorf("move pid %d from %s to %s: the destination cannot take its memory charge: %w",
			pid, m.fs.Path(src), m.fs.Path(dst), err)
	case errors.Is(err, fs.ErrNotExist):
		if verr := m.vanished(dst); verr != nil {
			return verr
		}
		return err
	default:
		return fmt.Errorf("move pid %d from %s: %w", pid, m.fs.Path(src), err)
	}
	return nil
}

// drain moves every process of src into dst and re-reads src until it is
// empty, so tasks forked meanwhile are caught. A missing src is ErrVanished
// unless tolerate is set. It returns the pids it found.
func (m *mover) drain(src, dst string, tolerate bool) ([]int, error) {
	found, _, err := m.drainGone(src, dst, tolerate)
	return found, err
}

// drainGone is drain that also tells whether src was missing.
func (m *mover) drainGone(src, dst string, tolerate bool) ([]int, bool, error) {
	return m.drainRounds(src, dst, tolerate, maxDrainRounds)
}

// drainRounds is drainGone with at most rounds reads of src. With one
// round, src is read once and what it listed is moved: a task forked into
// src between that read and its parent's move stays there, for a caller
// whose later check catches it (see moveTree).
func (m *mover) drainRounds(src, dst string, tolerate bool, rounds int) ([]int, bool, error) {
	var found []int
	for round := 0; round < rounds; round++ {
		pids, err := m.fs.Procs(src)
		if errors.Is(err, fs.ErrNotExist) {
			if tolerate {
				return found, true, nil
			}
			return found, true, vanishedErr(m.fs, src)
		}
		if err != nil {
			return found, false, err
		}
		if len(pids) == 0 {
			return found, false, nil
		}
		found = append(found, pids...)
		for _, pid := range pids {
			if err := m.move(src, dst, pid, false); err != nil {
				return found, false, err
			}
		}
	}
	if rounds < maxDrainRounds {
		return found, false, nil
	}
	return found, false, fmt.Errorf("drain %s: still not empty after %d rounds (is something moving processes in?)", m.fs.Path(src), maxDrainRounds)
}

// moveTree moves the processes of the tree at src to the same relative
// paths under dst: every source is drained (only pids listed in the source
// are written, so a pid reused by an unrelated process is never moved),
// then threads that sat apart from their process are put back through
// tasks. A source cgroup that is gone held nothing to move.
//
// Draining re-reads a source after moving what it listed, until a read is
// empty. That re-read guards against one race only: a task of the source
// forks between the read and its own move, and the child starts in the
// source (a task forks into its parent's cgroup; 3.10 cgroup_post_fork,
// 6.18 cgroup_post_fork under cgroup_threadgroup_rwsem). With once (a full
// migration, whose cleanup follows in the same run with the kubelet still
// stopped), each source is read once and the re-read is left to the
// cleanup: the kernel refuses to rmdir a cgroup that has a task (EBUSY;
// 3.10 cgroup_rmdir, 6.18 cgroup_destroy_locked), and removeOne then moves
// that task to the same path under kubepods and names it in Report.Swept,
// before the final check reads every pid list of the fresh tree. A child
// of this race is never left behind, only moved a little later (on 3.10
// without its page charges: the destination is disarmed by then; they are
// reparented at rmdir). Should that run stop before its cleanup and be
// finished by a critical-part-only rerun, such a child waits in the old
// tree until the cleanup, which moves and names it the same way.
func (e *Engine) moveTree(src, dst string, once bool) error {
	rounds := maxDrainRounds
	if once {
		rounds = 1
	}
	for _, n := range e.j.Snapshot.Nodes {
		_, gone, err := e.mv.drainRounds(under(src, n.Rel), under(dst, n.Rel), true, rounds)
		if err != nil {
			return err
		}
		if gone && src == e.kubepods && !slices.Contains(e.j.Vanished, n.Rel) {
			e.j.Vanished = append(e.j.Vanished, n.Rel) // kept in the fresh tree
		}
	}
	for _, n := range e.j.Snapshot.Nodes {
		for _, tid := range n.Threads {
			if err := e.mv.move(under(src, n.Rel), under(dst, n.Rel), tid, true); err != nil {
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
