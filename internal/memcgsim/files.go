package memcgsim

import (
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// file is one control file of a memory cgroup.
type file struct {
	name     string
	mode     fs.FileMode
	rootOnly bool
	read     func(s *Sim, cg *cgroup) (string, error) // nil: EINVAL
	write    func(s *Sim, cg *cgroup, v string) error // nil: EINVAL
}

// files lists the control files of a RHEL 7.8 memory cgroup, as on a real
// node (memcg-v1-semantics §3d); the modern profile shows the same set.
var controlFiles = []file{
	{name: "cgroup.clone_children", mode: 0o644, read: readBool(func(*cgroup) bool { return false }), write: acceptBool},
	{name: "cgroup.event_control", mode: 0o222}, // eventfd registrations cannot be simulated
	{name: "cgroup.procs", mode: 0o644, read: readProcs, write: func(s *Sim, cg *cgroup, v string) error { return s.move(cg, v, true) }},
	{name: "cgroup.sane_behavior", mode: 0o444, rootOnly: true, read: readBool(func(*cgroup) bool { return false })},
	{name: "memory.failcnt", mode: 0o644, read: readZero, write: resetCounter},
	{name: "memory.force_empty", mode: 0o200, write: (*Sim).forceEmpty},
	{name: "memory.kmem.failcnt", mode: 0o644, read: readZero, write: resetCounter},
	{name: "memory.kmem.limit_in_bytes", mode: 0o644, read: readInt(func(c *cgroup) int64 { return c.kmemLimit }), write: (*Sim).writeKmemLimit},
	{name: "memory.kmem.max_usage_in_bytes", mode: 0o644, read: readZero, write: resetCounter},
	{name: "memory.kmem.slabinfo", mode: 0o444, read: (*Sim).readSlabinfo},
	{name: "memory.kmem.tcp.failcnt", mode: 0o644, read: readZero, write: resetCounter},
	{name: "memory.kmem.tcp.limit_in_bytes", mode: 0o644, read: readInt(func(c *cgroup) int64 { return c.tcpLimit }), write: writeTCPLimit},
	{name: "memory.kmem.tcp.max_usage_in_bytes", mode: 0o644, read: readZero, write: resetCounter},
	{name: "memory.kmem.tcp.usage_in_bytes", mode: 0o444, read: readZero},
	{name: "memory.kmem.usage_in_bytes", mode: 0o444, read: readZero},
	{name: "memory.limit_in_bytes", mode: 0o644, read: readInt(func(c *cgroup) int64 { return c.limit }), write: writeLimit},
	// max_usage_in_bytes reads the current usage: the model keeps no peak.
	{name: "memory.max_usage_in_bytes", mode: 0o644, read: readInt((*cgroup).usage), write: resetCounter},
	{name: "memory.memsw.failcnt", mode: 0o644, read: readZero, write: resetCounter},
	{name: "memory.memsw.limit_in_bytes", mode: 0o644, read: readInt(func(c *cgroup) int64 { return c.memsw }), write: writeMemsw},
	{name: "memory.memsw.max_usage_in_bytes", mode: 0o644, read: readInt((*cgroup).usage), write: resetCounter},
	{name: "memory.memsw.usage_in_bytes", mode: 0o444, read: readInt((*cgroup).usage)},
	{name: "memory.move_charge_at_immigrate", mode: 0o644, read: readInt(func(c *cgroup) int64 { return c.moveCharge }), write: (*Sim).writeMoveCharge},
	{name: "memory.numa_stat", mode: 0o444, read: readNumaStat},
	{name: "memory.oom_control", mode: 0o644, read: readOOMControl, write: writeOOMControl},
	{name: "memory.pressure_level", mode: 0o000}, // eventfd only
	{name: "memory.soft_limit_in_bytes", mode: 0o644, read: readInt(func(c *cgroup) int64 { return c.softLimit }), write: writeSoftLimit},
	{name: "memory.stat", mode: 0o444, read: readStat},
	{name: "memory.swappiness", mode: 0o644, read: readInt(func(c *cgroup) int64 { return c.swappiness }), write: (*Sim).writeSwappiness},
	{name: "memory.usage_in_bytes", mode: 0o444, read: readInt((*cgroup).usage)},
	{name: "memory.use_hierarchy", mode: 0o644, read: readBool(func(c *cgroup) bool { return c.useHierarchy }), write: (*Sim).writeUseHierarchy},
	{name: "notify_on_release", mode: 0o644, read: readBool(func(c *cgroup) bool { return c.notifyOnRelease }), write: writeNotify},
	{name: "release_agent", mode: 0o644, rootOnly: true, read: func(*Sim, *cgroup) (string, error) { return "\n", nil }, write: func(*Sim, *cgroup, string) error { return nil }},
	{name: "tasks", mode: 0o644, read: readTasks, write: func(s *Sim, cg *cgroup, v string) error { return s.move(cg, v, false) }},
}

func findFile(name string, root bool) (file, bool) {
	i := slices.IndexFunc(controlFiles, func(f file) bool { return f.name == name })
	if i < 0 || (controlFiles[i].rootOnly && !root) {
		return file{}, false
	}
	return controlFiles[i], true
}

func isControlFile(name string, root bool) bool {
	_, ok := findFile(name, root)
	return ok
}

// fileInfo names a control file, its permission bits and its index.
type fileInfo struct {
	name  string
	mode  fs.FileMode
	index int
}

// fileInfos holds the control files of other cgroups [0] and of the root [1].
var fileInfos = func() (out [2][]fileInfo) {
	for i, f := range controlFiles {
		out[1] = append(out[1], fileInfo{name: f.name, mode: f.mode, index: i})
		if !f.rootOnly {
			out[0] = append(out[0], fileInfo{name: f.name, mode: f.mode, index: i})
		}
	}
	return out
}()

func infosFor(cg *cgroup) []fileInfo {
	if cg.isRoot() {
		return fileInfos[1]
	}
	return fileInfos[0]
}

// listing is what a directory read of a cgroup shows.
type listing struct {
	files    []fileInfo // shared, do not modify
	children []string
}

// list returns the control files and child cgroups of rel.
func (s *Sim) list(rel string) (listing, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cg, err := s.lookup(rel)
	if err != nil {
		return listing{}, err
	}
	l := listing{files: infosFor(cg), children: make([]string, 0, len(cg.children))}
	for n := range cg.children {
		l.children = append(l.children, n)
	}
	slices.Sort(l.children)
	return l, nil
}

// relOf returns the current path of the live cgroup with serial number
// serial, ENOENT once it was removed.
func (s *Sim) relOf(serial uint64) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cg, ok := s.bySerial[serial]
	if !ok {
		return "", syscall.ENOENT
	}
	return cg.path(), nil
}

// entry is one name inside a cgroup directory.
type entry struct {
	dir    bool
	mode   fs.FileMode // permission bits of a control file
	serial uint64      // serial number of the cgroup (the child for a dir)
	index  int         // index of a control file in controlFiles
}

// entry tells what name is inside cgroup rel: a child cgroup or a control
// file; ENOENT otherwise. name "" is rel itself.
func (s *Sim) entry(rel, name string) (entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cg, err := s.lookup(rel)
	if err != nil {
		return entry{}, err
	}
	if name == "" {
		return entry{dir: true, serial: cg.serial}, nil
	}
	if c, ok := cg.children[name]; ok {
		return entry{dir: true, serial: c.serial}, nil
	}
	for _, f := range infosFor(cg) {
		if f.name == name {
			return entry{mode: f.mode, serial: cg.serial, index: f.index}, nil
		}
	}
	return entry{}, syscall.ENOENT
}

// ReadFile returns the content of control file name of cgroup rel, or the
// errno a read(2) of it gets.
func (s *Sim) ReadFile(rel, name string) ([]byte, error) {
	if err := s.callHook(Op{Kind: OpRead, Cgroup: rel, File: name}); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cg, err := s.lookup(rel)
	if err != nil {
		return nil, err
	}
	f, ok := findFile(name, cg.isRoot())
	if !ok {
		return nil, syscall.ENOENT
	}
	if f.read == nil {
		return nil, syscall.EINVAL
	}
	v, err := f.read(s, cg)
	return []byte(v), err
}

// WriteFile applies one write(2) of data to control file name of cgroup rel.
func (s *Sim) WriteFile(rel, name string, data []byte) error {
	op := Op{Kind: OpWrite, Cgroup: rel, File: name, Data: string(data)}
	if name == "cgroup.procs" || name == "tasks" {
		op.Kind = OpMove
		op.Pid, _ = strconv.Atoi(strings.TrimSpace(string(data)))
	}
	return s.change(op, rel, func(cg *cgroup) error {
		f, ok := findFile(name, cg.isRoot())
		if !ok {
			return syscall.ENOENT
		}
		if f.write == nil {
			return syscall.EINVAL
		}
		return f.write(s, cg, strings.TrimSpace(string(data)))
	})
}

func readInt(get func(*cgroup) int64) func(*Sim, *cgroup) (string, error) {
	return func(_ *Sim, cg *cgroup) (string, error) { return strconv.FormatInt(get(cg), 10) + "\n", nil }
}

func readBool(get func(*cgroup) bool) func(*Sim, *cgroup) (string, error) {
	return func(_ *Sim, cg *cgroup) (string, error) {
		if get(cg) {
			return "1\n", nil
		}
		return "0\n", nil
	}
}

func readZero(*Sim, *cgroup) (string, error) { return "0\n", nil }

// resetCounter accepts the "0" that resets a failcnt or max_usage counter.
func resetCounter(_ *Sim, _ *cgroup, v string) error {
	if v != "0" {
		return syscall.EINVAL
	}
	return nil
}

func acceptBool(_ *Sim, _ *cgroup, v string) error {
	_, err := parseBool(v)
	return err
}

func parseBool(v string) (bool, error) {
	switch v {
	case "0":
		return false, nil
	case "1":
		return true, nil
	}
	return false, syscall.EINVAL
}

// parseBytes parses a limit like the kernel's page_counter_memparse: "-1"
// is unlimited, a number may carry a K/M/G/T/P/E suffix, values are
// rounded down to whole pages (memcg-v1-semantics §1f: 1000000 → 999424).
func parseBytes(v string) (int64, error) {
	if v == "-1" {
		return Unlimited, nil
	}
	mult := int64(1)
	if n := len(v); n > 0 {
		if i := strings.IndexByte("kmgtpe", lower(v[n-1])); i >= 0 {
			mult = 1 << (10 * (i + 1))
			v = v[:n-1]
		}
	}
	n, err := strconv.ParseUint(v, 0, 64)
	if err != nil {
		return 0, syscall.EINVAL
	}
	if n > uint64(Unlimited)/uint64(mult) {
		return Unlimited, nil
	}
	b := int64(n) * mult
	return b - b%pageSize, nil
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// writeLimit: root EINVAL; above memsw EINVAL; below usage EBUSY
// (memcg-v1-semantics §1f).
func writeLimit(_ *Sim, cg *cgroup, v string) error {
	n, err := parseBytes(v)
	if err != nil {
		return err
	}
	switch {
	case cg.isRoot():
		return syscall.EINVAL
	case n > cg.memsw:
		return syscall.EINVAL
	case n < cg.usage():
		return syscall.EBUSY
	}
	cg.limit = n
	return nil
}

// writeMemsw: root EINVAL; below the limit EINVAL; below usage EBUSY
// (memcg-v1-semantics §1f).
func writeMemsw(_ *Sim, cg *cgroup, v string) error {
	n, err := parseBytes(v)
	if err != nil {
		return err
	}
	switch {
	case cg.isRoot():
		return syscall.EINVAL
	case n < cg.limit:
		return syscall.EINVAL
	case n < cg.usage():
		return syscall.EBUSY
	}
	cg.memsw = n
	return nil
}

func writeSoftLimit(_ *Sim, cg *cgroup, v string) error {
	n, err := parseBytes(v)
	if err != nil {
		return err
	}
	cg.softLimit = n
	return nil
}

func writeTCPLimit(_ *Sim, cg *cgroup, v string) error {
	n, err := parseBytes(v)
	if err != nil {
		return err
	}
	if cg.isRoot() {
		return syscall.EINVAL
	}
	cg.tcpLimit = n
	return nil
}

// writeKmemLimit is where kmem accounting gets activated on 3.10
// (memcg-v1-semantics §1a, §3d): the first write of a value other than
// unlimited activates, with EBUSY when the cgroup has tasks, or children
// while use_hierarchy=1; the root never (EINVAL); it is never switched off.
// On modern kernels and with cgroup.memory=nokmem the write succeeds and does
// nothing (memcg-v1-semantics §2, §3d).
func (s *Sim) writeKmemLimit(cg *cgroup, v string) error {
	n, err := parseBytes(v)
	if err != nil {
		return err
	}
	if cg.isRoot() {
		return syscall.EINVAL
	}
	if s.profile == Modern || s.profile == RHEL78NoKmem {
		return nil
	}
	if n != Unlimited && cg.kmemID < 0 {
		if len(cg.tasks) > 0 || (cg.useHierarchy && len(cg.children) > 0) {
			return syscall.EBUSY
		}
		cg.kmemID = s.allocKmemID()
	}
	cg.kmemLimit = n
	return nil
}

// slabinfoHeader is what an active 3.10 cgroup's slabinfo starts with
// (memcg-v1-semantics §3d).
const slabinfoHeader = "slabinfo - version: 2.1\n" +
	"# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>\n"

// readSlabinfo: 3.10 → EIO unless kmem is active, root always EIO; active →
// the header (all a fresh cgroup shows, §3d), then, once it has caches
// (slabUsed), a line per root cache (the model, see SlabCaches) under the root cache's name, as RHEL 7.8's
// cache_show prints it (mm/slab.h cache_name: memcg caches print
// memcg_params->root_cache->name), so the cgroup's kmemcg ID does not show.
// Modern → always empty (memcg-v1-semantics §1b).
func (s *Sim) readSlabinfo(cg *cgroup) (string, error) {
	if s.profile == Modern {
		return "", nil
	}
	if cg.isRoot() || cg.kmemID < 0 {
		return "", syscall.EIO
	}
	var b strings.Builder
	b.WriteString(slabinfoHeader)
	if !cg.slabUsed {
		return b.String(), nil
	}
	for _, c := range rootCaches {
		fmt.Fprintf(&b, "%-17s      0      0    192   21    1 : tunables    0    0    0 : slabdata      0      0      0\n", c)
	}
	return b.String(), nil
}

// writeUseHierarchy (memcg-v1-semantics §1f): same value → OK; under a
// hierarchical parent → EINVAL; with children → EBUSY. Modern: 1 OK, 0
// EINVAL.
func (s *Sim) writeUseHierarchy(cg *cgroup, v string) error {
	b, err := parseBool(v)
	if err != nil {
		return err
	}
	if s.profile == Modern {
		if !b {
			return syscall.EINVAL
		}
		return nil
	}
	switch {
	case b == cg.useHierarchy:
		return nil
	case cg.parent != nil && cg.parent.useHierarchy:
		return syscall.EINVAL
	case len(cg.children) > 0:
		return syscall.EBUSY
	}
	cg.useHierarchy = b
	return nil
}

// writeMoveCharge (memcg-v1-semantics §1d): 0..3 on 3.10, ≥4 EINVAL; modern:
// only 0.
func (s *Sim) writeMoveCharge(cg *cgroup, v string) error {
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return syscall.EINVAL
	}
	if n > 3 || (s.profile == Modern && n != 0) {
		return syscall.EINVAL
	}
	cg.moveCharge = int64(n)
	return nil
}

// writeSwappiness (memcg-v1-semantics §1f): 0..100 on 3.10 (root EINVAL),
// 0..200 modern.
func (s *Sim) writeSwappiness(cg *cgroup, v string) error {
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return syscall.EINVAL
	}
	max := uint64(100)
	if s.profile == Modern {
		max = 200
	} else if cg.isRoot() {
		return syscall.EINVAL
	}
	if n > max {
		return syscall.EINVAL
	}
	cg.swappiness = int64(n)
	return nil
}

// writeOOMControl (memcg-v1-semantics §1f): 0 or 1, root EINVAL.
func writeOOMControl(_ *Sim, cg *cgroup, v string) error {
	b, err := parseBool(v)
	if err != nil || cg.isRoot() {
		return syscall.EINVAL
	}
	cg.oomKillDisable = b
	return nil
}

func readOOMControl(_ *Sim, cg *cgroup) (string, error) {
	d := 0
	if cg.oomKillDisable {
		d = 1
	}
	return fmt.Sprintf("oom_kill_disable %d\nunder_oom 0\n", d), nil
}

func writeNotify(_ *Sim, cg *cgroup, v string) error {
	b, err := parseBool(v)
	if err != nil {
		return err
	}
	cg.notifyOnRelease = b
	return nil
}

// forceEmpty (memcg-v1-semantics §1e): root EINVAL; 3.10: EBUSY with tasks or
// children, else the charges go to the parent; modern: reclaim only (nothing
// to reclaim in the model), never EBUSY. On 3.10 a kmem-active cgroup holds
// kernel memory (its tasks allocated slab objects) that reclaim cannot free,
// so mem_cgroup_force_empty runs all its reclaim rounds, each ending in
// congestion_wait: the virtual time of costs.go.
func (s *Sim) forceEmpty(cg *cgroup, _ string) error {
	if cg.isRoot() {
		return syscall.EINVAL
	}
	if s.profile == Modern {
		return nil
	}
	if len(cg.tasks) > 0 || len(cg.children) > 0 {
		return syscall.EBUSY
	}
	if cg.kmemID >= 0 {
		s.costs.ForceEmptyStalls++
		s.costs.Virtual += ForceEmptyRounds * ForceEmptyWait
	}
	s.reparent(cg)
	return nil
}

func readStat(_ *Sim, cg *cgroup) (string, error) {
	limit, memsw := cg.limit, cg.memsw
	for p := cg.parent; p != nil && p.useHierarchy; p = p.parent {
		limit, memsw = min(limit, p.limit), min(memsw, p.memsw)
	}
	return fmt.Sprintf("cache 0\nrss %d\nmapped_file 0\nswap 0\nhierarchical_memory_limit %d\nhierarchical_memsw_limit %d\ntotal_cache 0\ntotal_rss %d\ntotal_swap 0\n",
		cg.charge, limit, memsw, cg.usage()), nil
}

func readNumaStat(_ *Sim, cg *cgroup) (string, error) {
	u := cg.usage() / pageSize
	return fmt.Sprintf("total=%d N0=%d\nfile=0 N0=0\nanon=%d N0=%d\nunevictable=0 N0=0\n", u, u, u, u), nil
}
