package memcgsim

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// AddTask starts a simulated single-threaded process in cgroup rel whose
// anonymous memory (usage bytes) is charged to that cgroup, and returns its
// pid (≥ FirstPid, so it never looks like a real process). It fails with
// ENOENT for an unknown cgroup and ENOMEM when the charge does not fit under
// the limits of the cgroup and its hierarchical ancestors.
func (s *Sim) AddTask(rel string, usage int64) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cg, err := s.lookup(rel)
	if err != nil {
		return 0, fmt.Errorf("add task to %q: %w", rel, err)
	}
	if err := chargeFits(cg, nil, usage); err != nil {
		return 0, fmt.Errorf("add task to %q with %d bytes: %w", rel, usage, err)
	}
	pid := s.nextPid
	s.nextPid++
	s.tasks[pid] = &task{tid: pid, tgid: pid, cg: cg, usage: usage, charged: cg}
	cg.tasks[pid] = true
	cg.charge += usage
	cg.slabUsed = cg.slabUsed || cg.kmemID >= 0
	return pid, nil
}

// AddThread adds a thread to the process pid, in the cgroup of its leader,
// and returns the new thread id.
func (s *Sim) AddThread(pid int) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	leader, ok := s.tasks[pid]
	if !ok || leader.tgid != pid {
		return 0, fmt.Errorf("add thread to pid %d: %w", pid, syscall.ESRCH)
	}
	tid := s.nextPid
	s.nextPid++
	s.tasks[tid] = &task{tid: tid, tgid: pid, cg: leader.cg}
	leader.cg.tasks[tid] = true
	return tid, nil
}

// Exit ends the thread tid; when tid is a thread-group leader the whole
// process exits and its memory is uncharged.
func (s *Sim) Exit(tid int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tasks[tid]
	if !ok {
		return fmt.Errorf("exit pid %d: %w", tid, syscall.ESRCH)
	}
	gone := []*task{t}
	if t.tid == t.tgid {
		gone = s.group(t.tgid)
		t.charged.charge -= t.usage
	}
	for _, g := range gone {
		delete(g.cg.tasks, g.tid)
		delete(s.tasks, g.tid)
	}
	return nil
}

// TaskCgroup returns the cgroup (relative path) of thread tid.
func (s *Sim) TaskCgroup(tid int) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tasks[tid]
	if !ok {
		return "", fmt.Errorf("cgroup of pid %d: %w", tid, syscall.ESRCH)
	}
	return t.cg.path(), nil
}

// group returns every thread of thread group tgid.
func (s *Sim) group(tgid int) []*task {
	var out []*task
	for _, t := range s.tasks {
		if t.tgid == tgid {
			out = append(out, t)
		}
	}
	return out
}

// chargeFits checks that bytes more can be charged to dst and the
// hierarchical ancestors it is accounted in, up to (not including) the
// first one that already holds the charge because it is an ancestor of
// from. It returns ENOMEM otherwise, like the precharge of a task move
// (memcg-v1-semantics §1d) or a charge beyond the limit.
func chargeFits(dst, from *cgroup, bytes int64) error {
	for d := dst; d != nil; d = d.parent {
		if from != nil && isAncestor(d, from) {
			return nil
		}
		if !d.isRoot() && (d.usage()+bytes > d.limit || d.usage()+bytes > d.memsw) {
			return syscall.ENOMEM
		}
		if d.parent == nil || !d.parent.useHierarchy {
			return nil
		}
	}
	return nil
}

func isAncestor(a, c *cgroup) bool {
	for ; c != nil; c = c.parent {
		if c == a {
			return true
		}
	}
	return false
}

// move handles a write to cgroup.procs (whole thread group) or tasks (one
// thread) of dst (memcg-v1-semantics §1d, §1f): ESRCH for a pid the simulator
// does not know, EINVAL for garbage. When dst has move_charge_at_immigrate
// bit 0 set and the moved thread is the group leader (the mm owner), its
// charge moves too, and the move fails with ENOMEM, the task staying where it
// was, when dst cannot take it.
func (s *Sim) move(dst *cgroup, v string, wholeGroup bool) error {
	pid, err := strconv.Atoi(v)
	if err != nil || pid < 0 {
		return syscall.EINVAL
	}
	t, ok := s.tasks[pid]
	if !ok {
		return syscall.ESRCH
	}
	moving := []*task{t}
	if wholeGroup {
		moving = s.group(t.tgid)
	}
	leader := s.tasks[t.tgid]
	chargeMoves := dst.moveCharge&1 != 0 && slices.Contains(moving, leader) &&
		leader.charged != dst && leader.usage > 0
	if chargeMoves {
		if err := chargeFits(dst, leader.charged, leader.usage); err != nil {
			return err
		}
		leader.charged.charge -= leader.usage
		dst.charge += leader.usage
		leader.charged = dst
	}
	for _, m := range moving {
		delete(m.cg.tasks, m.tid)
		m.cg = dst
		dst.tasks[m.tid] = true
	}
	dst.slabUsed = dst.slabUsed || dst.kmemID >= 0
	return nil
}

func readProcs(s *Sim, cg *cgroup) (string, error) {
	seen := map[int]bool{}
	for tid := range cg.tasks {
		seen[s.tasks[tid].tgid] = true
	}
	return pidList(seen), nil
}

func readTasks(_ *Sim, cg *cgroup) (string, error) { return pidList(cg.tasks), nil }

func pidList(set map[int]bool) string {
	pids := make([]int, 0, len(set))
	for p := range set {
		pids = append(pids, p)
	}
	slices.Sort(pids)
	var b strings.Builder
	for _, p := range pids {
		fmt.Fprintf(&b, "%d\n", p)
	}
	return b.String()
}
