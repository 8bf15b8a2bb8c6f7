package memcg

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// DefaultMountinfo is the mount table CheckRoot reads.
const DefaultMountinfo = "/proc/self/mountinfo"

// ErrNotMemoryRoot means a directory is not the root of a cgroup v1 memory
// hierarchy; the message says what it is instead.
var ErrNotMemoryRoot = errors.New("not the root of a cgroup v1 memory hierarchy")

// rootControlFiles exist at the root of every cgroup v1 memory hierarchy
// (mm/memcontrol.c mem_cgroup_files in 3.10, memory_files in 6.x).
var rootControlFiles = []string{Limit, Usage, UseHierarchy, Procs}

// CheckRoot tells whether h.Root is the root of a cgroup v1 memory
// hierarchy, reading only:
//   - on cgroupfs (statfs magic CGROUP_SUPER_MAGIC) the mount table
//     (mountinfo) must show h.Root as the mount point of a "cgroup" file
//     system whose super options name the memory controller;
//   - on a FUSE file system (the simulator, internal/memcgsim) the memory
//     control files of a root cgroup must be there;
//   - anything else (a plain directory, tmpfs, cgroup2) is refused.
//
// The error wraps ErrNotMemoryRoot (and the errno of a failed stat) and
// names the directory and what it is.
func (h Hierarchy) CheckRoot(mountinfo string) error {
	if mountinfo == "" {
		mountinfo = DefaultMountinfo
	}
	root := h.Root
	notRoot := func(format string, a ...any) error {
		return fmt.Errorf("%s: %w: "+format, append([]any{root, ErrNotMemoryRoot}, a...)...)
	}
	fi, err := os.Stat(root)
	if err != nil {
		return notRoot("%w", err)
	}
	if !fi.IsDir() {
		return notRoot("not a directory")
	}
	var st unix.Statfs_t
	if err := unix.Statfs(root, &st); err != nil {
		return notRoot("statfs: %w", err)
	}
	switch int64(st.Type) {
	case unix.CGROUP_SUPER_MAGIC:
		real, err := filepath.EvalSymlinks(root)
		if err != nil {
			return notRoot("%w", err)
		}
		return checkMountinfo(mountinfo, filepath.Clean(real), notRoot)
	case unix.FUSE_SUPER_MAGIC:
		for _, f := range rootControlFiles {
			fi, err := os.Stat(h.Path("", f))
			if err != nil {
				return notRoot("a FUSE file system without the memory control file %s: %w", f, err)
			}
			if !fi.Mode().IsRegular() {
				return notRoot("a FUSE file system where %s is not a file", f)
			}
		}
		return nil
	case unix.CGROUP2_SUPER_MAGIC:
		return notRoot("a cgroup v2 (unified) hierarchy; verify handles cgroup v1 only")
	}
	return notRoot("a plain directory (file system magic %#x), not cgroupfs", st.Type)
}

// checkMountinfo finds the mount at dir in a mountinfo file and checks that
// it is a cgroup v1 hierarchy with the memory controller.
func checkMountinfo(mountinfo, dir string, notRoot func(string, ...any) error) error {
	f, err := os.Open(mountinfo)
	if err != nil {
		return fmt.Errorf("check %s: %w", dir, err)
	}
	defer f.Close()
	var found, under string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// 35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		fields, tail := strings.Fields(pre), strings.Fields(post)
		if !ok || len(fields) < 5 || len(tail) < 3 {
			continue
		}
		mp := unescapeMount(fields[4])
		if tail[0] != "cgroup" {
			continue
		}
		opts := strings.Split(tail[2], ",")
		switch {
		case mp == dir:
			if !slices.Contains(opts, "memory") {
				found = "cgroup hierarchy without the memory controller (" + tail[2] + ")"
				continue
			}
			if r := unescapeMount(fields[3]); r != "/" {
				// A cgroup namespace or a bind mount of a cgroup: its
				// "root" is some cgroup, which may well be kmem-active.
				found = "mount of cgroup " + r + " of the memory hierarchy, not of its root"
				continue
			}
			return nil
		case strings.HasPrefix(dir, mp+"/") && slices.Contains(opts, "memory"):
			under = mp
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("check %s: %s: %w", dir, mountinfo, err)
	}
	switch {
	case found != "":
		return notRoot("a %s", found)
	case under != "":
		return notRoot("a cgroup inside the memory hierarchy mounted at %s, not its root", under)
	}
	return notRoot("cgroupfs, but %s names no cgroup mount at %s", mountinfo, dir)
}

// unescapeMount undoes the octal escapes (\040 for a space) of mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			var v byte
			ok := true
			for _, c := range []byte(s[i+1 : i+4]) {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + c - '0'
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
