// Package memcg reads and changes a cgroup v1 memory hierarchy mounted at any
// directory: the real /sys/fs/cgroup/memory, a FUSE mount of the simulator
// (internal/memcgsim) or a plain directory in tests. It also holds the facts
// the rest of verify builds on: the node's layout (layout.go: the cgroup
// driver, the kubepods names, scratch names, the kmem-active test) and the
// one decision on the kernel's kmem semantics (semantics.go).
//
// Every error is an *fs.PathError that names the operation and the file, and
// keeps the errno, so errors.Is(err, syscall.EBUSY) works and the message
// reads like "write /x/memory.limit_in_bytes: device or resource busy".
package memcg

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Control files used by the node tool.
const (
	Procs           = "cgroup.procs"
	Tasks           = "tasks"
	Limit           = "memory.limit_in_bytes"
	MemswLimit      = "memory.memsw.limit_in_bytes"
	SoftLimit       = "memory.soft_limit_in_bytes"
	KmemLimit       = "memory.kmem.limit_in_bytes"
	KmemSlabinfo    = "memory.kmem.slabinfo"
	Usage           = "memory.usage_in_bytes"
	UseHierarchy    = "memory.use_hierarchy"
	MoveCharge      = "memory.move_charge_at_immigrate"
	Swappiness      = "memory.swappiness"
	OOMControl      = "memory.oom_control"
	ForceEmpty      = "memory.force_empty"
	NotifyOnRelease = "notify_on_release"
)

// Unlimited is what the kernel reports for an unlimited memory limit
// (PAGE_COUNTER_MAX rounded to pages); write "-1" to set it.
const Unlimited int64 = 9223372036854771712

// Hierarchy is a cgroup v1 memory hierarchy mounted at Root. Cgroups are
// named by slash-separated paths relative to Root; "" is the root cgroup.
type Hierarchy struct {
	Root string
}

// Path returns the directory of cgroup rel, or of file inside it.
func (h Hierarchy) Path(rel string, file ...string) string {
	return filepath.Join(append([]string{h.Root, filepath.FromSlash(rel)}, file...)...)
}

// pathErr builds an *fs.PathError for op on path that keeps the errno of err.
func pathErr(op, path string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return &fs.PathError{Op: op, Path: path, Err: err}
}

// ReadString returns the content of file in cgroup rel with surrounding
// white space removed.
func (h Hierarchy) ReadString(rel, file string) (string, error) {
	return readFile(h.Path(rel, file))
}

// ReadInt reads a file that holds one integer, such as memory.limit_in_bytes.
func (h Hierarchy) ReadInt(rel, file string) (int64, error) {
	s, err := h.ReadString(rel, file)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, pathErr("parse", h.Path(rel, file), err)
	}
	return v, nil
}

// Write writes value to file in cgroup rel in a single write(2), as the
// kernel expects. The file is opened without O_TRUNC or O_CREATE.
func (h Hierarchy) Write(rel, file, value string) error {
	p := h.Path(rel, file)
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return pathErr("open", p, err)
	}
	_, werr := f.Write([]byte(value))
	cerr := f.Close()
	if werr != nil {
		return pathErr("write", p, werr)
	}
	if cerr != nil {
		return pathErr("close", p, cerr)
	}
	return nil
}

// WriteInt writes an integer value, see Write.
func (h Hierarchy) WriteInt(rel, file string, v int64) error {
	return h.Write(rel, file, strconv.FormatInt(v, 10))
}

// Procs lists the thread-group ids in cgroup rel (cgroup.procs).
func (h Hierarchy) Procs(rel string) ([]int, error) { return h.readPids(rel, Procs) }

// Tasks lists the thread ids in cgroup rel (tasks).
func (h Hierarchy) Tasks(rel string) ([]int, error) { return h.readPids(rel, Tasks) }

func (h Hierarchy) readPids(rel, file string) ([]int, error) {
	s, err := h.ReadString(rel, file)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(s) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			return nil, pathErr("parse", h.Path(rel, file), err)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// Move moves the whole thread group of pid into cgroup rel by writing it to
// cgroup.procs. On 3.10 it fails with ENOMEM when move_charge_at_immigrate is
// set and the destination cannot take the charge, and with ESRCH when the
// process is gone.
func (h Hierarchy) Move(rel string, pid int) error {
	return h.move(rel, Procs, pid)
}

// MoveThread moves the single thread tid into cgroup rel through tasks.
func (h Hierarchy) MoveThread(rel string, tid int) error {
	return h.move(rel, Tasks, tid)
}

func (h Hierarchy) move(rel, file string, pid int) error {
	err := h.Write(rel, file, strconv.Itoa(pid))
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return &fs.PathError{Op: fmt.Sprintf("move pid %d: %s", pid, pe.Op), Path: pe.Path, Err: pe.Err}
		}
	}
	return err
}

// Mkdir creates cgroup rel; its parent must exist.
func (h Hierarchy) Mkdir(rel string) error {
	p := h.Path(rel)
	if err := syscall.Mkdir(p, 0o755); err != nil {
		return pathErr("mkdir", p, err)
	}
	return nil
}

// Rmdir removes the empty cgroup rel (EBUSY while it has tasks or children).
func (h Hierarchy) Rmdir(rel string) error {
	p := h.Path(rel)
	if err := syscall.Rmdir(p); err != nil {
		return pathErr("rmdir", p, err)
	}
	return nil
}

// Exists reports whether cgroup rel exists.
func (h Hierarchy) Exists(rel string) (bool, error) {
	p := h.Path(rel)
	fi, err := os.Stat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, pathErr("stat", p, err)
	case !fi.IsDir():
		return false, pathErr("stat", p, syscall.ENOTDIR)
	}
	return true, nil
}

// Children returns the relative paths of the direct child cgroups of rel,
// sorted by name.
func (h Hierarchy) Children(rel string) ([]string, error) {
	names, err := subdirs(h.Path(rel))
	if err != nil {
		return nil, err
	}
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = join(rel, n)
	}
	return out, nil
}

// Walk returns rel and every cgroup below it, parents before children
// (top-down, depth first, siblings sorted by name; iterate backwards for a
// leaf-first order). It does not care about the layout, so both
// kubepods/{burstable,besteffort}/pod…/<ctr> and kubepods/pod…/<ctr> are
// walked alike. A cgroup removed while the walk runs (a live kubelet
// deleting a pod) makes it fail with ENOENT naming that cgroup; callers that
// race with kubelet retry.
func (h Hierarchy) Walk(rel string) ([]string, error) {
	if ok, err := h.Exists(rel); err != nil {
		return nil, err
	} else if !ok {
		return nil, pathErr("walk", h.Path(rel), syscall.ENOENT)
	}
	var out []string
	var visit func(string) error
	visit = func(p string) error {
		out = append(out, p)
		kids, err := h.Children(p)
		if err != nil {
			return err
		}
		for _, k := range kids {
			if err := visit(k); err != nil {
				return err
			}
		}
		return nil
	}
	if err := visit(rel); err != nil {
		return nil, err
	}
	return out, nil
}

// RemoveTree removes cgroup rel and every cgroup below it, leaf first. It
// stops at the first error (EBUSY when a cgroup still has tasks).
func (h Hierarchy) RemoveTree(rel string) error {
	all, err := h.Walk(rel)
	if err != nil {
		return err
	}
	for i := len(all) - 1; i >= 0; i-- {
		if err := h.Rmdir(all[i]); err != nil {
			return err
		}
	}
	return nil
}

func join(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "/" + name
}
