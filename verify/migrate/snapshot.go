package migrate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"sync"
	"syscall"

	"github.com/nokmem/nokmem/verify/memcg"
)

// Node is one cgroup of the kubepods tree as it was before the migration.
type Node struct {
	// Rel is the path relative to kubepods; "" is kubepods itself.
	Rel      string   `json:"rel"`
	Settings Settings `json:"settings"`
	// Pids are the thread-group ids (cgroup.procs) that lived here.
	Pids []int `json:"pids,omitempty"`
	// Starts are the start times (field 22 of /proc/<pid>/stat) of Pids,
	// in the same order, 0 where unknown: a pid with another start time
	// later is a new process that reused the pid, not the one planned.
	Starts []uint64 `json:"starts,omitempty"`
	// Threads are thread ids that sat here while their process had other
	// threads elsewhere; they are put back one by one through tasks.
	Threads []int `json:"threads,omitempty"`
}

// Snapshot is the kubepods tree before the migration, parents before children.
type Snapshot struct {
	// Inode of the old kubepods directory: it identifies the old tree
	// wherever it is (at kubepods, then under the set-aside name).
	Inode uint64 `json:"inode"`
	// Root holds the memory root's use_hierarchy, swappiness and
	// oom_kill_disable: what a fresh child of the root inherits.
	Root  Settings `json:"root"`
	Nodes []Node   `json:"nodes"`
	// Regrouped says which split processes could not keep their
	// per-thread placement, and why.
	Regrouped []string `json:"regrouped,omitempty"`
}

// Counts returns the number of cgroups and processes in the snapshot.
func (s Snapshot) Counts() (cgroups, procs int) {
	for _, n := range s.Nodes {
		procs += len(n.Pids)
	}
	return len(s.Nodes), procs
}

func (s Snapshot) index(rel string) int {
	return slices.IndexFunc(s.Nodes, func(n Node) bool { return n.Rel == rel })
}

// under returns the path of rel (relative to kubepods) below prefix.
func under(prefix, rel string) string {
	if rel == "" {
		return prefix
	}
	return path.Join(prefix, rel)
}

// snapshotWorkers read the cgroups of a snapshot in parallel: the reads
// are independent and a snapshot is most of the kubelet-down time.
const snapshotWorkers = 4

// parallel calls read(cw, i) for i in [0, n) on snapshotWorkers goroutines,
// each with its own operation counter (added to c's at the end), and
// returns every error joined.
func (c cgfs) parallel(n int, read func(cw cgfs, i int) error) error {
	errs := make([]error, n)
	counts := make([]OpCounts, snapshotWorkers)
	var wg sync.WaitGroup
	for w := range snapshotWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cw := cgfs{h: c.h, n: &counts[w]}
			for i := w; i < n; i += snapshotWorkers {
				errs[i] = read(cw, i)
			}
		}()
	}
	wg.Wait()
	for _, k := range counts {
		*c.n = c.n.Add(k)
	}
	return errors.Join(errs...)
}

// takeSnapshot reads every directory, setting and pid of the tree at
// kubepods, each file once. use_hierarchy is read on kubepods, and below
// it only when kubepods' is 0: under a hierarchical parent a cgroup's is 1
// and cannot change (3.10 mem_cgroup_hierarchy_write: EINVAL under a
// hierarchical parent; ≥5.11: always 1). A process whose threads sit in
// several cgroups shows in cgroup.procs of each; only there are the tasks
// files read.
func takeSnapshot(c cgfs, kubepods string, pt procTable) (Snapshot, error) {
	ino, err := inode(c.h, kubepods)
	if err != nil {
		return Snapshot{}, err
	}
	all, err := c.Walk(kubepods)
	if err != nil {
		return Snapshot{}, fmt.Errorf("snapshot: %w", err)
	}
	s := Snapshot{Inode: ino, Nodes: make([]Node, len(all))}
	if s.Root, err = readRootSettings(c); err != nil {
		return Snapshot{}, fmt.Errorf("snapshot: %w", err)
	}
	if s.Nodes[0], err = readNode(c, kubepods, kubepods, true, pt); err != nil {
		return Snapshot{}, err
	}
	if s.Nodes[0].Settings.UseHierarchy == "" {
		s.Nodes[0].Settings.UseHierarchy = s.Root.UseHierarchy
	}
	flat := s.Nodes[0].Settings.UseHierarchy != "1"
	err = c.parallel(len(all)-1, func(cw cgfs, i int) (err error) {
		s.Nodes[i+1], err = readNode(cw, kubepods, all[i+1], flat, pt)
		return err
	})
	if err != nil {
		return Snapshot{}, err
	}
	seenIn := map[int][]int{} // pid → node indexes
	for i := range s.Nodes {
		n := &s.Nodes[i]
		if n.Settings.UseHierarchy == "" && i > 0 {
			n.Settings.UseHierarchy = s.Nodes[s.index(parentRel(n.Rel))].Settings.UseHierarchy
		}
		for _, p := range n.Pids {
			seenIn[p] = append(seenIn[p], i)
		}
	}
	return s, splitThreads(c, kubepods, &s, seenIn, pt)
}

// readNode reads one cgroup (abs, below kubepods) for the snapshot.
func readNode(c cgfs, kubepods, abs string, withHierarchy bool, pt procTable) (Node, error) {
	rel := ""
	if abs != kubepods {
		rel = abs[len(kubepods)+1:]
	}
	st, err := readSettings(c, abs, withHierarchy)
	if err != nil {
		return Node{}, fmt.Errorf("snapshot: %w", err)
	}
	pids, err := c.Procs(abs)
	if err != nil {
		return Node{}, fmt.Errorf("snapshot: %w", err)
	}
	n := Node{Rel: rel, Settings: st, Pids: pids}
	if pt.enabled() {
		for _, p := range pids {
			start, _ := pt.start(p)
			n.Starts = append(n.Starts, start)
		}
	}
	return n, nil
}

// splitThreads keeps per-thread placement: a process whose threads sit in
// more than one cgroup shows in cgroup.procs of each. Its threads are taken
// from the process table (<proc>/<pid>/task); the process is listed once,
// in the cgroup of its leader, and its other threads in Threads of their
// cgroups, to be put back one by one through tasks. Without a process table
// entry the split cannot be kept: it is recorded in Regrouped and reported.
func splitThreads(c cgfs, kubepods string, s *Snapshot, seenIn map[int][]int, pt procTable) error {
	pids := make([]int, 0, len(seenIn))
	for pid, idx := range seenIn {
		if len(idx) > 1 {
			pids = append(pids, pid)
		}
	}
	slices.Sort(pids)
	for _, pid := range pids {
		idx := seenIn[pid]
		tids, err := pt.threads(pid)
		if err != nil {
			s.Regrouped = append(s.Regrouped, fmt.Sprintf("pid %d has threads in %d cgroups but no readable thread list (%v): its threads end up together", pid, len(idx), err))
			for _, i := range idx[1:] {
				s.Nodes[i].dropPid(pid)
			}
			continue
		}
		home, mine := idx[0], map[int][]int{}
		for _, i := range idx {
			t, err := c.Tasks(under(kubepods, s.Nodes[i].Rel))
			if err != nil {
				return fmt.Errorf("snapshot: %w", err)
			}
			for _, tid := range t {
				if slices.Contains(tids, tid) {
					mine[i] = append(mine[i], tid)
				}
			}
			if slices.Contains(t, pid) {
				home = i
			}
		}
		for _, i := range idx {
			if i != home {
				s.Nodes[i].dropPid(pid)
				s.Nodes[i].Threads = append(s.Nodes[i].Threads, mine[i]...)
			}
		}
	}
	return nil
}

func (n *Node) dropPid(pid int) {
	k := slices.Index(n.Pids, pid)
	if k < 0 {
		return
	}
	n.Pids = slices.Delete(n.Pids, k, k+1)
	if len(n.Starts) > k {
		n.Starts = slices.Delete(n.Starts, k, k+1)
	}
}

// inode returns the inode number of cgroup rel's directory.
func inode(h memcg.Hierarchy, rel string) (uint64, error) {
	fi, err := os.Stat(h.Path(rel))
	if err != nil {
		return 0, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, fmt.Errorf("stat %s: no inode number", h.Path(rel))
	}
	return st.Ino, nil
}

// inodeOrZero returns the inode of rel, 0 when it does not exist.
func inodeOrZero(h memcg.Hierarchy, rel string) (uint64, error) {
	ino, err := inode(h, rel)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	return ino, err
}

// exists is memcg's Exists without the error for a plain missing path.
func exists(h memcg.Hierarchy, rel string) (bool, error) {
	ok, err := h.Exists(rel)
	if err != nil && errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return ok, err
}

// kmemInactive reports whether kmem accounting is off in every cgroup of
// the tree at kubepods (memcg.KmemActive finds none), which proves the tree
// fresh on 3.10 kernels; on later kernels slabinfo never reads EIO, so this
// is never true there. A missing kubepods is not clean (the layout check
// reports it).
func kmemInactive(c cgfs, kubepods string) (cgroups int, clean bool, err error) {
	if ok, err := c.Exists(kubepods); err != nil || !ok {
		return 0, false, err
	}
	if active, err := memcg.KmemActive(c, []string{kubepods}, 1); err != nil || len(active) > 0 {
		return 0, false, err // kubepods itself is kmem-active: no walk needed
	}
	all, err := c.Walk(kubepods)
	if err != nil {
		return 0, false, err
	}
	active, err := memcg.KmemActive(c, all, 1)
	if err != nil {
		return 0, false, err
	}
	return len(all), len(active) == 0, nil
}
