package kubeletnode

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/moby/sys/mountinfo"
)

// CgroupMount is where the cgroup v1 hierarchies are mounted.
const CgroupMount = "/sys/fs/cgroup"

// Cgroups is one scratch cgroup, /nokmem-test-<random>, created in every
// cgroup v1 hierarchy mounted under CgroupMount: the kubelet's --cgroup-root.
type Cgroups struct {
	// Name is the cgroup's name under each hierarchy's root.
	Name string
	// Dirs are the cgroup's directories, one per hierarchy.
	Dirs []string
	// unified is where the cgroup goes in the cgroup2 mounts under
	// CgroupMount (/sys/fs/cgroup/unified): not created here, but the
	// kubelet's and runc's libcontainer create it there too, so Remove
	// removes it.
	unified []string
}

// Memory returns the scratch cgroup's directory in the memory hierarchy.
func (c *Cgroups) Memory() string { return filepath.Join(CgroupMount, "memory", c.Name) }

// hierarchies lists the mount points under CgroupMount of the cgroup v1
// hierarchies and of cgroup2.
func hierarchies() (v1, v2 []string, err error) {
	ms, err := mountinfo.GetMounts(func(m *mountinfo.Info) (skip, stop bool) {
		return filepath.Dir(m.Mountpoint) != CgroupMount, false
	})
	if err != nil {
		return nil, nil, err
	}
	for _, m := range ms {
		switch m.FSType {
		case "cgroup":
			v1 = append(v1, m.Mountpoint)
		case "cgroup2":
			v2 = append(v2, m.Mountpoint)
		}
	}
	sort.Strings(v1)
	return v1, v2, nil
}

// NewCgroups creates the scratch cgroup name in every cgroup v1 hierarchy.
// On error it removes what it made.
func NewCgroups(name string) (*Cgroups, error) {
	hs, v2, err := hierarchies()
	if err != nil {
		return nil, fmt.Errorf("cgroup hierarchies: %w", err)
	}
	c := &Cgroups{Name: name}
	for _, h := range v2 {
		c.unified = append(c.unified, filepath.Join(h, name))
	}
	for _, h := range hs {
		d := filepath.Join(h, name)
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, errors.Join(fmt.Errorf("scratch cgroup: %w", err), c.Remove(0))
		}
		c.Dirs = append(c.Dirs, d)
		if filepath.Base(h) == "cpuset" {
			// A new cpuset has no cpus and mems: copy the parent's.
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				v, err := os.ReadFile(filepath.Join(h, f))
				if err == nil {
					err = os.WriteFile(filepath.Join(d, f), v, 0o644)
				}
				if err != nil {
					return nil, errors.Join(fmt.Errorf("scratch cpuset %s: %w", d, err), c.Remove(0))
				}
			}
		}
	}
	if len(c.Dirs) == 0 {
		return nil, fmt.Errorf("no cgroup v1 hierarchy mounted under %s", CgroupMount)
	}
	return c, nil
}

// Pids lists the processes in the scratch cgroups (any hierarchy, any depth).
func (c *Cgroups) Pids() []int {
	seen := map[int]bool{}
	var pids []int
	for _, d := range c.Dirs {
		filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err != nil || !e.IsDir() {
				return nil
			}
			data, _ := os.ReadFile(filepath.Join(p, "cgroup.procs"))
			for _, f := range strings.Fields(string(data)) {
				var pid int
				if _, err := fmt.Sscan(f, &pid); err == nil && !seen[pid] {
					seen[pid] = true
					pids = append(pids, pid)
				}
			}
			return nil
		})
	}
	sort.Ints(pids)
	return pids
}

// Remove removes every scratch cgroup directory, leaf first, retrying while
// a cgroup is still busy (its last processes exiting) for up to wait.
func (c *Cgroups) Remove(wait time.Duration) error {
	deadline := time.Now().Add(wait)
	var errs []error
	for _, d := range append(slices.Clone(c.Dirs), c.unified...) {
		for {
			err := removeTree(d)
			if err == nil || !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
				if err != nil {
					errs = append(errs, err)
				}
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return errors.Join(errs...)
}

// removeTree removes the cgroup dir and every cgroup below it, deepest first.
func removeTree(dir string) error {
	var dirs []string
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	for _, d := range dirs {
		if err := syscall.Rmdir(d); err != nil && err != syscall.ENOENT {
			return &fs.PathError{Op: "rmdir", Path: d, Err: err}
		}
	}
	return nil
}
