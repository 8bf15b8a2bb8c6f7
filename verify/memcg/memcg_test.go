package memcg_test

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/nokmem/nokmem/internal/memcgsim"
	"github.com/nokmem/nokmem/internal/testenv"
	"github.com/nokmem/nokmem/verify/memcg"
)

// fakeTree builds directories with control files in a temp dir; plain files
// can only test paths and parsing, never kernel errnos.
func fakeTree(t *testing.T, dirs ...string) memcg.Hierarchy {
	t.Helper()
	root := t.TempDir()
	for _, d := range append([]string{""}, dirs...) {
		p := filepath.Join(root, d)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{memcg.Procs, memcg.Tasks, memcg.Limit} {
			if err := os.WriteFile(filepath.Join(p, f), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return memcg.Hierarchy{Root: root}
}

func TestWalkLayouts(t *testing.T) {
	tests := []struct {
		name string
		dirs []string
		want []string
	}{
		{
			name: "qos classes",
			dirs: []string{"kubepods/burstable/podA/c1", "kubepods/burstable/podA/c2", "kubepods/besteffort/podB/c3", "kubepods/podG/c4"},
			want: []string{"kubepods", "kubepods/besteffort", "kubepods/besteffort/podB", "kubepods/besteffort/podB/c3",
				"kubepods/burstable", "kubepods/burstable/podA", "kubepods/burstable/podA/c1", "kubepods/burstable/podA/c2",
				"kubepods/podG", "kubepods/podG/c4"},
		},
		{
			name: "flat pods",
			dirs: []string{"kubepods/pod1/c1", "kubepods/pod2"},
			want: []string{"kubepods", "kubepods/pod1", "kubepods/pod1/c1", "kubepods/pod2"},
		},
		{
			name: "leaf only",
			dirs: []string{"kubepods"},
			want: []string{"kubepods"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := fakeTree(t, tt.dirs...)
			got, err := h.Walk("kubepods")
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Walk = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestWalkMissing(t *testing.T) {
	h := fakeTree(t)
	_, err := h.Walk("kubepods")
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), filepath.Join(h.Root, "kubepods")) {
		t.Fatalf("Walk of a missing cgroup: %v, want ENOENT naming the path", err)
	}
}

func TestReadWriteAndPids(t *testing.T) {
	h := fakeTree(t, "a")
	if err := h.WriteInt("a", memcg.Limit, 4096); err != nil {
		t.Fatal(err)
	}
	if v, err := h.ReadInt("a", memcg.Limit); err != nil || v != 4096 {
		t.Fatalf("ReadInt = %d, %v; want 4096", v, err)
	}
	if err := os.WriteFile(h.Path("a", memcg.Procs), []byte("12\n345\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if pids, err := h.Procs("a"); err != nil || !slices.Equal(pids, []int{12, 345}) {
		t.Fatalf("Procs = %v, %v", pids, err)
	}
	if pids, err := h.Tasks("a"); err != nil || len(pids) != 0 {
		t.Fatalf("Tasks of an empty file = %v, %v", pids, err)
	}
	if err := os.WriteFile(h.Path("a", memcg.Limit), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := h.ReadInt("a", memcg.Limit); err == nil || !strings.Contains(err.Error(), "parse "+h.Path("a", memcg.Limit)) {
		t.Fatalf("ReadInt of garbage: %v", err)
	}
}

func TestErrorsKeepErrnoAndPath(t *testing.T) {
	h := fakeTree(t, "a")
	tests := []struct {
		name   string
		do     func() error
		errno  syscall.Errno
		prefix string
	}{
		{"write missing file", func() error { return h.Write("a", memcg.Swappiness, "1") }, syscall.ENOENT, "open " + h.Path("a", memcg.Swappiness)},
		{"read missing file", func() error { _, err := h.ReadString("a", memcg.Swappiness); return err }, syscall.ENOENT, "read " + h.Path("a", memcg.Swappiness)},
		{"move into missing cgroup", func() error { return h.Move("b", 7) }, syscall.ENOENT, "move pid 7: open " + h.Path("b", memcg.Procs)},
		{"mkdir existing", func() error { return h.Mkdir("a") }, syscall.EEXIST, "mkdir " + h.Path("a")},
		{"rmdir non-empty", func() error { return h.Rmdir("a") }, syscall.ENOTEMPTY, "rmdir " + h.Path("a")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.do()
			if !errors.Is(err, tt.errno) {
				t.Fatalf("err = %v, want errno %v", err, tt.errno)
			}
			if !strings.HasPrefix(err.Error(), tt.prefix+": ") {
				t.Errorf("err = %q, want prefix %q", err, tt.prefix)
			}
		})
	}
}

// scratch makes a unique cgroup directly under the real memory root.
func scratch(t *testing.T) (memcg.Hierarchy, string) {
	t.Helper()
	testenv.RequireCgroupV1Memory(t)
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	h := memcg.Hierarchy{Root: testenv.MemoryRoot}
	name := "nokmem-test-" + hex.EncodeToString(b)
	if err := h.Mkdir(name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.RemoveTree(name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return h, name
}

func TestRealHierarchy(t *testing.T) {
	h, s := scratch(t)
	for _, d := range []string{s + "/kubepods", s + "/kubepods/burstable", s + "/kubepods/burstable/podA", s + "/kubepods/podB"} {
		if err := h.Mkdir(d); err != nil {
			t.Fatal(err)
		}
	}
	got, err := h.Walk(s + "/kubepods")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{s + "/kubepods", s + "/kubepods/burstable", s + "/kubepods/burstable/podA", s + "/kubepods/podB"}
	if !slices.Equal(got, want) {
		t.Errorf("Walk = %q, want %q", got, want)
	}
	// docs/memcg-v1-semantics.md §1f: rmdir with children → EBUSY on every
	// kernel.
	err = h.Rmdir(s + "/kubepods")
	if !errors.Is(err, syscall.EBUSY) || err.Error() != "rmdir "+h.Path(s+"/kubepods")+": device or resource busy" {
		t.Errorf("rmdir with children: %v, want EBUSY naming the path", err)
	}
	// docs/memcg-v1-semantics.md §1f: limit above memsw → EINVAL.
	for _, w := range [][2]string{{memcg.Limit, "50M"}, {memcg.MemswLimit, "100M"}} {
		if err := h.Write(s+"/kubepods/podB", w[0], w[1]); err != nil {
			t.Fatal(err)
		}
	}
	err = h.Write(s+"/kubepods/podB", memcg.Limit, "200M")
	if !errors.Is(err, syscall.EINVAL) || !strings.HasPrefix(err.Error(), "write "+h.Path(s+"/kubepods/podB", memcg.Limit)) {
		t.Errorf("limit above memsw: %v, want EINVAL from write", err)
	}
	if err := h.Move(s+"/kubepods/podB", 0x7ffffff0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("move of an unknown pid: %v, want ESRCH", err)
	}
}

func TestSlabinfoState(t *testing.T) {
	_, m := memcgsim.MountForTest(t, memcgsim.RHEL78)
	h := memcg.Hierarchy{Root: m.Memory}
	if err := h.Mkdir("kubepods"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		rel, activate string
		want          memcg.Slabinfo
	}{
		{"", "", memcg.SlabinfoEIO},
		{"kubepods", "", memcg.SlabinfoEIO},
		{"kubepods", "1", memcg.SlabinfoHeader},
		{"nope", "", memcg.SlabinfoMissing},
	}
	for _, tt := range tests {
		if tt.activate != "" {
			if err := h.Write(tt.rel, memcg.KmemLimit, tt.activate); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := h.SlabinfoState(tt.rel); err != nil || got != tt.want {
			t.Errorf("SlabinfoState(%q) = %q, %v; want %q", tt.rel, got, err, tt.want)
		}
	}
}
