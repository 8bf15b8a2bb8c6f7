package memcg_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nokmem/nokmem/internal/memcgsim"
	"github.com/nokmem/nokmem/internal/testenv"
	"github.com/nokmem/nokmem/verify/memcg"
)

// TestCheckRoot: only the root of a cgroup v1 memory hierarchy (or the
// simulator's) passes; everything else is refused with what it is.
func TestCheckRoot(t *testing.T) {
	testenv.RequireCgroupV1Memory(t)
	_, m := memcgsim.MountForTest(t, memcgsim.RHEL78)
	scratch := "nokmem-test-check-" + strings.ToLower(filepath.Base(t.TempDir()))
	real := memcg.Hierarchy{Root: testenv.MemoryRoot}
	if err := real.Mkdir(scratch); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := real.Rmdir(scratch); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		root, want string
	}{
		{testenv.MemoryRoot, ""},
		{m.Memory, ""},
		{t.TempDir(), "a plain directory"},
		{file, "not a directory"},
		{filepath.Join(t.TempDir(), "missing"), "no such file"},
		{filepath.Dir(testenv.MemoryRoot), "a plain directory"}, // the tmpfs holding the hierarchies
		{real.Path(scratch), "a cgroup inside the memory hierarchy mounted at " + testenv.MemoryRoot},
		{filepath.Join(m.Root, "sys/fs/cgroup"), "without the memory control file"},
	}
	if _, err := os.Stat("/sys/fs/cgroup/cpu/cpu.shares"); err == nil {
		tests = append(tests, struct{ root, want string }{"/sys/fs/cgroup/cpu", "without the memory controller"})
	}
	for _, tt := range tests {
		t.Run(tt.root, func(t *testing.T) {
			err := memcg.Hierarchy{Root: tt.root}.CheckRoot("")
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, memcg.ErrNotMemoryRoot) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.root) {
				t.Fatalf("err = %v, want %q naming %s", err, tt.want, tt.root)
			}
		})
	}
}

// TestCheckRootMountinfo: on cgroupfs the mount table decides; a table
// without the hierarchy refuses even the real root.
func TestCheckRootMountinfo(t *testing.T) {
	testenv.RequireCgroupV1Memory(t)
	tests := []struct {
		name, mountinfo, want string
	}{
		{"memory", "35 31 0:32 / " + testenv.MemoryRoot + " rw,relatime - cgroup cgroup rw,memory\n", ""},
		{"co-mounted", "35 31 0:32 / " + testenv.MemoryRoot + " rw - cgroup cgroup rw,cpuset,memory\n", ""},
		{"no memory controller", "35 31 0:32 / " + testenv.MemoryRoot + " rw - cgroup cgroup rw,cpu\n", "without the memory controller"},
		{"cgroup namespace", "35 31 0:32 /kubepods/pod1 " + testenv.MemoryRoot + " rw - cgroup cgroup rw,memory\n", "mount of cgroup /kubepods/pod1 of the memory hierarchy, not of its root"},
		{"not mounted", "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n", "names no cgroup mount"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "mountinfo")
			if err := os.WriteFile(p, []byte(tt.mountinfo), 0o644); err != nil {
				t.Fatal(err)
			}
			err := memcg.Hierarchy{Root: testenv.MemoryRoot}.CheckRoot(p)
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}
