package migrate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
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
}

// Snapshot is the kubepods tree before the migration, parents before children.
type Snapshot struct {
	// Inode of the old kubepods directory, to prove the new one is different.
	Inode uint64 `json:"inode"`
	Nodes []Node `json:"nodes"`
}

// Counts returns the number of cgroups and processes in the snapshot.
func (s Snapshot) Counts() (cgroups, procs int) {
	for _, n := range s.Nodes {
		procs += len(n.Pids)
	}
	return len(s.Nodes), procs
}

// under returns the path of rel (relative to kubepods) below prefix.
func under(prefix, rel string) string {
	if rel == "" {
		return prefix
	}
	return path.Join(prefix, rel)
}

// takeSnapshot reads every directory, setting and pid of the tree at kubepods.
func takeSnapshot(h memcg.Hierarchy, kubepods string) (Snapshot, error) {
	ino, err := inode(h, kubepods)
	if err != nil {
		return Snapshot{}, err
	}
	all, err := h.Walk(kubepods)
	if err != nil {
		return Snapshot{}, fmt.Errorf("snapshot: %w", err)
	}
	s := Snapshot{Inode: ino}
	for _, abs := range all {
		rel := ""
		if abs != kubepods {
			rel = abs[len(kubepods)+1:]
		}
		st, err := readSettings(h, abs)
		if err != nil {
			return Snapshot{}, fmt.Errorf("snapshot: %w", err)
		}
		pids, err := h.Procs(abs)
		if err != nil {
			return Snapshot{}, fmt.Errorf("snapshot: %w", err)
		}
		s.Nodes = append(s.Nodes, Node{Rel: rel, Settings: st, Pids: pids})
	}
	return s, nil
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

// exists is memcg's Exists without the error for a plain missing path.
func exists(h memcg.Hierarchy, rel string) (bool, error) {
	ok, err := h.Exists(rel)
	if err != nil && errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return ok, err
}

// kmemInactive reports whether every cgroup of the tree at kubepods reads
// EIO from memory.kmem.slabinfo, which on 3.10 kernels proves kmem
// accounting is off everywhere (kernel-semantics.md §1b). On later kernels
// slabinfo never reads EIO, so this is never true there. A missing kubepods
// is not clean (the layout check reports it).
func kmemInactive(h memcg.Hierarchy, kubepods string) (cgroups int, clean bool, err error) {
	if ok, err := exists(h, kubepods); err != nil || !ok {
		return 0, false, err
	}
	all, err := h.Walk(kubepods)
	if err != nil {
		return 0, false, err
	}
	for _, rel := range all {
		st, err := h.SlabinfoState(rel)
		if err != nil {
			return 0, false, err
		}
		if st != memcg.SlabinfoEIO {
			return len(all), false, nil
		}
	}
	return len(all), true, nil
}
