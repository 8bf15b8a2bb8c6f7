package memcgsim

import (
	"fmt"
	"time"
)

// The 3.10 cost model. On 3.10 (RHEL 7) memory.force_empty runs
// mem_cgroup_force_empty (mm/memcontrol.c): it reclaims until
// memory.usage_in_bytes is 0, and every round without progress costs
// congestion_wait(BLK_RW_ASYNC, HZ/10), a real 100 ms sleep, for at most
// MEM_CGROUP_RECLAIM_RETRIES (5) rounds. A cgroup that holds kernel memory
// never reaches 0 (kmem charges count in usage and cannot be reclaimed), so
// force_empty there always costs 5 × 100 ms = 0.5 s, whatever the CPU.
// rmdir reparents the LRU pages by itself (mem_cgroup_css_offline →
// mem_cgroup_reparent_charges), so force_empty before rmdir buys nothing.
const (
	// ForceEmptyRounds is MEM_CGROUP_RECLAIM_RETRIES of 3.10.
	ForceEmptyRounds = 5
	// ForceEmptyWait is one congestion_wait(BLK_RW_ASYNC, HZ/10).
	ForceEmptyWait = 100 * time.Millisecond
)

// Costs counts the operations on the simulator by kind and the virtual time
// that 3.10 would spend sleeping in them. The simulator never sleeps: the
// time is only accounted, so a benchmark can report what a real node would
// see.
type Costs struct {
	Mkdir, Rmdir, Rename, Move int
	// ReadPids counts reads of cgroup.procs and tasks; Read other control
	// files; Write every control-file write that is not a move.
	ReadPids, Read, Write int
	// ForceEmpty counts memory.force_empty writes, ForceEmptyStalls those
	// that ran all reclaim rounds without reaching 0 (kmem held).
	ForceEmpty, ForceEmptyStalls int
	// Reparents counts mem_cgroup_reparent_charges runs at rmdir.
	Reparents int
	// Virtual is the time 3.10 would spend in congestion_wait.
	Virtual time.Duration
}

// Settings returns the control-file reads and writes that are not moves
// or pid listings: the work beyond the bare mkdir/rmdir/rename/move.
func (c Costs) Settings() int { return c.Read + c.Write }

// Sub returns c − o, for the costs of one stretch of a run.
func (c Costs) Sub(o Costs) Costs {
	return Costs{
		Mkdir: c.Mkdir - o.Mkdir, Rmdir: c.Rmdir - o.Rmdir, Rename: c.Rename - o.Rename, Move: c.Move - o.Move,
		ReadPids: c.ReadPids - o.ReadPids, Read: c.Read - o.Read, Write: c.Write - o.Write,
		ForceEmpty: c.ForceEmpty - o.ForceEmpty, ForceEmptyStalls: c.ForceEmptyStalls - o.ForceEmptyStalls,
		Reparents: c.Reparents - o.Reparents, Virtual: c.Virtual - o.Virtual,
	}
}

func (c Costs) String() string {
	return fmt.Sprintf("mkdir %d, rmdir %d, rename %d, pid moves %d, pid-list reads %d, control reads %d, control writes %d (force_empty %d, %d stalled), reparents %d, 3.10 sleep %s",
		c.Mkdir, c.Rmdir, c.Rename, c.Move, c.ReadPids, c.Read, c.Write, c.ForceEmpty, c.ForceEmptyStalls, c.Reparents, c.Virtual)
}

// count records op; s.mu is held.
func (c *Costs) count(op Op) {
	switch op.Kind {
	case OpMkdir:
		c.Mkdir++
	case OpRmdir:
		c.Rmdir++
	case OpRename:
		c.Rename++
	case OpMove:
		c.Move++
	case OpRead:
		if op.File == "cgroup.procs" || op.File == "tasks" {
			c.ReadPids++
		} else {
			c.Read++
		}
	case OpWrite:
		c.Write++
		if op.File == "memory.force_empty" {
			c.ForceEmpty++
		}
	}
}

// Costs returns the counters so far.
func (s *Sim) Costs() Costs {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.costs
}

// Clock returns the virtual time 3.10 would have slept so far.
func (s *Sim) Clock() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.costs.Virtual
}
