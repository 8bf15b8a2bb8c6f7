package migrate

import (
	"fmt"

	"github.com/nokmem/nokmem/verify/memcg"
)

// OpCounts counts what a run did to cgroupfs, by kind. Mkdir, Rmdir,
// Rename and Move are the bare operations of a migration; ReadPids are the
// cgroup.procs/tasks reads that find the processes to move; Read and Write
// are every other control-file access (settings, move_charge_at_immigrate):
// the overhead beyond the bare operations, which the benchmarks report
// (bench_test.go).
type OpCounts struct {
	Mkdir    int `json:"mkdir"`
	Rmdir    int `json:"rmdir"`
	Rename   int `json:"rename"`
	Move     int `json:"move"`
	ReadPids int `json:"read_pids"`
	Read     int `json:"read"`
	Write    int `json:"write"`
	// ArmWrites are the Writes that arm or restore
	// move_charge_at_immigrate around the moves.
	ArmWrites int `json:"arm_writes"`
	// ForceEmpty counts memory.force_empty writes (none: rmdir reparents).
	ForceEmpty int `json:"force_empty"`
}

// Add returns the sum of two counts.
func (o OpCounts) Add(p OpCounts) OpCounts {
	return OpCounts{o.Mkdir + p.Mkdir, o.Rmdir + p.Rmdir, o.Rename + p.Rename, o.Move + p.Move,
		o.ReadPids + p.ReadPids, o.Read + p.Read, o.Write + p.Write, o.ArmWrites + p.ArmWrites, o.ForceEmpty + p.ForceEmpty}
}

func (o OpCounts) String() string {
	return fmt.Sprintf("mkdir %d, rmdir %d, rename %d, pid moves %d, pid-list reads %d, control reads %d, control writes %d (move_charge arm/restore %d), force_empty %d",
		o.Mkdir, o.Rmdir, o.Rename, o.Move, o.ReadPids, o.Read, o.Write, o.ArmWrites, o.ForceEmpty)
}

// cgfs is a memcg.Hierarchy that counts its operations.
type cgfs struct {
	h memcg.Hierarchy
	n *OpCounts
}

func (c cgfs) Path(rel string, file ...string) string { return c.h.Path(rel, file...) }

func (c cgfs) ReadString(rel, file string) (string, error) {
	c.n.Read++
	return c.h.ReadString(rel, file)
}

func (c cgfs) Write(rel, file, v string) error {
	c.n.Write++
	if file == memcg.MoveCharge {
		c.n.ArmWrites++
	}
	return c.h.Write(rel, file, v)
}

func (c cgfs) Procs(rel string) ([]int, error) {
	c.n.ReadPids++
	return c.h.Procs(rel)
}

func (c cgfs) Tasks(rel string) ([]int, error) {
	c.n.ReadPids++
	return c.h.Tasks(rel)
}

func (c cgfs) Move(rel string, pid int) error {
	c.n.Move++
	return c.h.Move(rel, pid)
}

func (c cgfs) MoveThread(rel string, tid int) error {
	c.n.Move++
	return c.h.MoveThread(rel, tid)
}

func (c cgfs) Mkdir(rel string) error {
	c.n.Mkdir++
	return c.h.Mkdir(rel)
}

func (c cgfs) Rmdir(rel string) error {
	c.n.Rmdir++
	return c.h.Rmdir(rel)
}

func (c cgfs) Rename(from, to string) error {
	c.n.Rename++
	return c.h.Rename(from, to)
}

func (c cgfs) Walk(rel string) ([]string, error)     { return c.h.Walk(rel) }
func (c cgfs) Children(rel string) ([]string, error) { return c.h.Children(rel) }

func (c cgfs) Exists(rel string) (bool, error) { return exists(c.h, rel) }
func (c cgfs) SlabinfoState(rel string) (memcg.Slabinfo, error) {
	c.n.Read++
	return c.h.SlabinfoState(rel)
}
