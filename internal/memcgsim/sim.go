// Package memcgsim is a model of the cgroup v1 memory controller of
// RHEL/CentOS 7.8 (kernel 3.10.0-1127), with switches for the older css_id
// kernels and for modern kernels, served over FUSE (see Mount) so that real
// programs use it through real system calls and get the kernel's errnos.
//
// The rules come from the 3.10 and 6.x sources (mm/memcontrol.c,
// kernel/cgroup.c, kernel/cgroup/cgroup-v1.c) and from measurements on
// RHEL 7.8 and 6.18 machines. docs/memcg-v1-semantics.md in this repository
// states them with their sources and measurements; comments here cite its
// sections as "memcg-v1-semantics §1a", and each rule has a test in this
// package. The simulator keeps its own pid table:
// tests seed tasks with AddTask; no real process is ever involved. Hidden
// state (IDs in use, leaked IDs, kmem activation) is readable through Go
// methods without touching the mount.
package memcgsim

import (
	"fmt"
	"strings"
	"sync"
	"syscall"
)

// Profile selects which kernel the simulator behaves like.
type Profile int

const (
	// RHEL78 is RHEL/CentOS 7.8 (3.10.0-1127): kmem activated by a limit
	// write, slabinfo EIO unless active, private memcg idr 1..65534 whose
	// exhaustion fails mkdir with ENOMEM, IDs of kmem-active cgroups leak.
	RHEL78 Profile = iota
	// RHELCSSID is an older RHEL 7 (≤7.4, css_id): as RHEL78 but IDs
	// 1..65535 and exhaustion fails mkdir with ENOSPC (memcg-v1-semantics §1c).
	RHELCSSID
	// Modern is an upstream ≥6.13 kernel: kmem always on, slabinfo empty,
	// IDs freed at rmdir, move_charge_at_immigrate≠0 and use_hierarchy=0
	// rejected, force_empty never EBUSY, swappiness up to 200.
	Modern
	// RHEL78NoKmem is RHEL78 booted with cgroup.memory=nokmem
	// (memcg-v1-semantics §1a, §3d): activation writes return 0 and change
	// nothing, even with tasks or children, so slabinfo reads EIO everywhere
	// and no ID leaks.
	RHEL78NoKmem
)

func (p Profile) String() string {
	switch p {
	case RHEL78:
		return "rhel7.8"
	case RHELCSSID:
		return "rhel7-cssid"
	case Modern:
		return "modern"
	case RHEL78NoKmem:
		return "rhel7.8-nokmem"
	}
	return fmt.Sprintf("Profile(%d)", int(p))
}

// rhel reports whether p follows the 3.10 rules.
func (p Profile) rhel() bool { return p != Modern }

// maxID is the highest memcg ID of the profile (memcg-v1-semantics §1c).
func (p Profile) maxID() int {
	if p == RHEL78 || p == RHEL78NoKmem {
		return 65534 // idr_alloc(…, 1, USHRT_MAX)
	}
	return 65535
}

// idExhausted is the errno of mkdir when no ID is left
// (memcg-v1-semantics §1c).
func (p Profile) idExhausted() syscall.Errno {
	if p == RHEL78 || p == RHEL78NoKmem {
		return syscall.ENOMEM
	}
	return syscall.ENOSPC
}

// Unlimited is what an unlimited limit reads as (memcg-v1-semantics §2,
// page_counter).
const Unlimited int64 = 9223372036854771712

const pageSize = 4096

// FirstPid is the first pid AddTask hands out, far above real pids.
const FirstPid = 100000

// OpKind names an operation on the simulated hierarchy.
type OpKind string

// Operations passed to the hook.
const (
	OpMkdir OpKind = "mkdir"
	OpRmdir OpKind = "rmdir"
	OpRead  OpKind = "read"
	OpWrite OpKind = "write"
	OpMove  OpKind = "move" // a write of a pid to cgroup.procs or tasks
	// OpRename renames a cgroup within its parent; Data is the new
	// relative path.
	OpRename OpKind = "rename"
)

// Op is one operation, as seen by the hook before it is applied.
type Op struct {
	Kind   OpKind
	Cgroup string // relative path, "" for the root
	File   string // control file for reads, writes and moves
	Data   string // written data, as given
	Pid    int    // for OpMove: the pid written (0 if it did not parse)
}

// Hook observes every operation before the simulator applies it; a non-nil
// return fails the operation with that error instead (through the mount a
// syscall.Errno is passed on as is, anything else becomes EIO). The hook runs
// without the simulator's lock held, so it may call AddTask, Exit and so on.
type Hook func(Op) error

// Sim is the simulated memory hierarchy. It is safe for concurrent use.
type Sim struct {
	mu       sync.Mutex
	profile  Profile
	root     *cgroup
	maxID    int
	ids      map[int]bool // memcg IDs in use: live and leaked
	lowFree  int          // no ID below this is free
	kmemIDs  map[int]bool // kmemcg_id (memcg_cache_id) in use
	leaked   []*cgroup    // dead kmem-active cgroups pinning their IDs
	live     int          // live cgroups, root included (/proc/cgroups)
	tasks    map[int]*task
	nextPid  int
	serial   uint64 // last cgroup serial number handed out
	readOnly bool
	hook     Hook
	// bySerial finds a live cgroup by its serial number (the FUSE nodes
	// name cgroups by serial, so a rename keeps them valid).
	bySerial map[uint64]*cgroup
	// inval tells the FUSE mount that name under the cgroup with serial
	// parent changed behind its back (a change through the Go API).
	inval func(parent uint64, name string)
	costs Costs
}

type cgroup struct {
	name     string
	parent   *cgroup
	children map[string]*cgroup
	id       int
	kmemID   int // -1 while kmem accounting is inactive
	// slabUsed: a task ran in the cgroup while kmem was active, so it has
	// per-memcg slab caches (created on first allocation). See SlabCaches.
	slabUsed bool
	serial   uint64 // never reused: gives the directory a stable inode number

	useHierarchy    bool
	limit, memsw    int64
	kmemLimit       int64
	tcpLimit        int64
	softLimit       int64
	swappiness      int64
	oomKillDisable  bool
	moveCharge      int64
	notifyOnRelease bool
	charge          int64 // bytes charged to this cgroup itself
	tasks           map[int]bool
}

// task is one simulated thread. The thread-group leader (pid == tgid)
// carries the memory of the group and the cgroup it is charged to.
type task struct {
	tid, tgid int
	cg        *cgroup
	usage     int64   // leader only
	charged   *cgroup // leader only: where usage is charged
}

// New returns a simulator with only the root cgroup. The root has
// use_hierarchy=1, as systemd sets it on CentOS 7 (memcg-v1-semantics §1f);
// write 0 to it while it has no children to get the kernel default.
func New(p Profile) *Sim {
	s := &Sim{
		profile:  p,
		maxID:    p.maxID(),
		ids:      map[int]bool{},
		kmemIDs:  map[int]bool{},
		tasks:    map[int]*task{},
		nextPid:  FirstPid,
		bySerial: map[uint64]*cgroup{},
	}
	s.root = s.newCgroup("", nil)
	s.bySerial[s.root.serial] = s.root
	s.root.useHierarchy = true
	s.root.swappiness = 60
	s.root.id = s.allocID()
	s.live = 1
	return s
}

func (s *Sim) newCgroup(name string, parent *cgroup) *cgroup {
	s.serial++
	return &cgroup{
		serial:    s.serial,
		name:      name,
		parent:    parent,
		children:  map[string]*cgroup{},
		kmemID:    -1,
		limit:     Unlimited,
		memsw:     Unlimited,
		kmemLimit: Unlimited,
		tcpLimit:  Unlimited,
		softLimit: Unlimited,
		tasks:     map[int]bool{},
	}
}

// Profile returns the kernel profile.
func (s *Sim) Profile() Profile { return s.profile }

// SetHook installs h (nil removes it).
func (s *Sim) SetHook(h Hook) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hook = h
}

// ReadOnly makes every later write, mkdir and rmdir fail with EROFS, like a
// cgroupfs mounted read-only.
func (s *Sim) ReadOnly(ro bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.readOnly = ro
}

// LimitIDs shrinks the memcg ID space to 1..n so that tests can exhaust it
// quickly; IDs already in use above n stay in use.
func (s *Sim) LimitIDs(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maxID = n
}

// callHook runs the hook, if any, outside the lock.
func (s *Sim) callHook(op Op) error {
	s.mu.Lock()
	s.costs.count(op)
	h := s.hook
	s.mu.Unlock()
	if h == nil {
		return nil
	}
	return h(op)
}

// lookup finds cgroup rel; the caller holds the lock.
func (s *Sim) lookup(rel string) (*cgroup, error) {
	cg := s.root
	if rel == "" {
		return cg, nil
	}
	for _, name := range strings.Split(rel, "/") {
		next, ok := cg.children[name]
		if !ok {
			return nil, syscall.ENOENT
		}
		cg = next
	}
	return cg, nil
}

// path returns the relative path of cg.
func (cg *cgroup) path() string {
	if cg.parent == nil {
		return ""
	}
	if p := cg.parent.path(); p != "" {
		return p + "/" + cg.name
	}
	return cg.name
}

func (cg *cgroup) isRoot() bool { return cg.parent == nil }

// kmemActive: on modern kernels every non-root memcg accounts kmem
// (memcg-v1-semantics §1a).
func (s *Sim) kmemActive(cg *cgroup) bool {
	if s.profile == Modern {
		return !cg.isRoot()
	}
	return cg.kmemID >= 0
}

// allocID hands out the lowest free ID, like idr_alloc; 0 when none is left.
func (s *Sim) allocID() int {
	for id := max(s.lowFree, 1); id <= s.maxID; id++ {
		if !s.ids[id] {
			s.ids[id] = true
			s.lowFree = id + 1
			return id
		}
	}
	return 0
}

func (s *Sim) freeID(id int) {
	delete(s.ids, id)
	s.lowFree = min(s.lowFree, id)
}

func (s *Sim) allocKmemID() int {
	for id := 0; ; id++ {
		if !s.kmemIDs[id] {
			s.kmemIDs[id] = true
			return id
		}
	}
}

// usage is the hierarchical usage of cg: its own charge plus, when
// use_hierarchy=1, that of its children (their counters are parented).
func (cg *cgroup) usage() int64 {
	u := cg.charge
	if cg.useHierarchy {
		for _, c := range cg.children {
			u += c.usage()
		}
	}
	return u
}

// change runs op's hook outside the lock (a hook may add tasks), then fn on
// the cgroup at rel under the lock. A read-only simulator refuses every
// change with EROFS, as a read-only cgroupfs mount does.
func (s *Sim) change(op Op, rel string, fn func(cg *cgroup) error) error {
	if err := s.callHook(op); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.readOnly {
		return syscall.EROFS
	}
	cg, err := s.lookup(rel)
	if err != nil {
		return err
	}
	return fn(cg)
}

// Mkdir creates cgroup rel. A child copies use_hierarchy, swappiness,
// oom_kill_disable and kmem activation from its parent (memcg-v1-semantics §1a
// memcg_propagate_kmem, §1f). It fails with ENOMEM (RHEL78) or ENOSPC
// when the ID space is exhausted (memcg-v1-semantics §1c).
func (s *Sim) Mkdir(rel string) error {
	parentRel, name := splitRel(rel)
	return s.change(Op{Kind: OpMkdir, Cgroup: rel}, parentRel, func(parent *cgroup) error {
		return s.mkdirLocked(parent, name)
	})
}

// mkdirLocked creates child name of parent; s.mu is held.
func (s *Sim) mkdirLocked(parent *cgroup, name string) error {
	if name == "" {
		return syscall.EEXIST
	}
	if _, ok := parent.children[name]; ok {
		return syscall.EEXIST
	}
	if isControlFile(name, parent.isRoot()) {
		return syscall.EEXIST
	}
	id := s.allocID()
	if id == 0 {
		return s.profile.idExhausted()
	}
	cg := s.newCgroup(name, parent)
	cg.id = id
	cg.useHierarchy = parent.useHierarchy
	cg.swappiness = parent.swappiness
	cg.oomKillDisable = parent.oomKillDisable
	if s.profile.rhel() && parent.kmemID >= 0 {
		cg.kmemID = s.allocKmemID()
	}
	parent.children[name] = cg
	s.bySerial[cg.serial] = cg
	s.live++
	return nil
}

// Rmdir removes cgroup rel: EBUSY with tasks or children
// (memcg-v1-semantics §1f). Charges left in it go to the parent (3.10:
// mem_cgroup_css_offline → mem_cgroup_reparent_charges, counted in
// Costs.Reparents). On the RHEL profiles a kmem-active cgroup keeps its memcg
// ID and kmemcg ID after rmdir: the leak (memcg-v1-semantics §1c, §3d). A
// mount sees the change at once.
func (s *Sim) Rmdir(rel string) error {
	parentRel, name := splitRel(rel)
	if err := s.rmdir(rel); err != nil {
		return err
	}
	s.invalidate(parentRel, name)
	return nil
}

func (s *Sim) rmdir(rel string) error {
	return s.change(Op{Kind: OpRmdir, Cgroup: rel}, rel, s.rmdirLocked)
}

// rmdirLocked removes cg; s.mu is held.
func (s *Sim) rmdirLocked(cg *cgroup) error {
	if cg.isRoot() {
		return syscall.EBUSY
	}
	if len(cg.tasks) > 0 || len(cg.children) > 0 {
		return syscall.EBUSY
	}
	s.reparent(cg)
	s.costs.Reparents++
	delete(cg.parent.children, cg.name)
	delete(s.bySerial, cg.serial)
	s.live--
	if s.profile.rhel() && cg.kmemID >= 0 {
		s.leaked = append(s.leaked, cg)
		return nil
	}
	s.freeID(cg.id)
	if cg.kmemID >= 0 {
		delete(s.kmemIDs, cg.kmemID)
	}
	return nil
}

// reparent moves the charges of cg to its parent (3.10 force_empty and
// css_offline, memcg-v1-semantics §1e).
func (s *Sim) reparent(cg *cgroup) {
	cg.parent.charge += cg.charge
	cg.charge = 0
	for _, t := range s.tasks {
		if t.charged == cg {
			t.charged = cg.parent
		}
	}
}

func splitRel(rel string) (parent, name string) {
	i := strings.LastIndexByte(rel, '/')
	if i < 0 {
		return "", rel
	}
	return rel[:i], rel[i+1:]
}
