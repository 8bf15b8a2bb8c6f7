package detect_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nokmem/nokmem/internal/testenv"
	"github.com/nokmem/nokmem/verify/detect"
	"github.com/nokmem/nokmem/verify/memcg"
)

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

func TestReadProcCgroups(t *testing.T) {
	tests := []struct {
		name, content string
		want          detect.ProcCgroupsLine
		wantErr       string
	}{
		{"rhel7", "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpuset\t2\t4\t1\nmemory\t7\t128\t1\n", detect.ProcCgroupsLine{Hierarchy: 7, NumCgroups: 128, Enabled: true}, ""},
		{"disabled", "memory\t0\t1\t0\n", detect.ProcCgroupsLine{NumCgroups: 1}, ""},
		{"no memory line", "cpu\t3\t1\t1\n", detect.ProcCgroupsLine{}, "no memory line"},
		{"garbage", "memory\tx\t1\t1\n", detect.ProcCgroupsLine{}, "memory line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "cgroups")
			writeFile(t, p, tt.content, 0o644)
			got, err := detect.ReadProcCgroups(p)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestEstimateLeaked(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"kubepods/burstable/live1", "system.slice"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	slab := t.TempDir()
	for _, n := range []string{
		"cred_jar", ":t-0000192", // global caches: ignored
		"cred_jar(102:p99)", "dentry(102:p99)", // one dead memcg, two caches
		"cred_jar(103:p100)",
		"cred_jar(5:live1)", // live cgroup: not leaked
		"kmalloc-64(7:burstable)",
	} {
		writeFile(t, filepath.Join(slab, n), "", 0o644)
	}
	got, err := detect.EstimateLeaked(slab, memcg.Hierarchy{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"102:p99", "103:p100"}
	if !got.Available || got.Aliases != 5 || got.IDs != 2 || !slices.Equal(got.Dead, want) {
		t.Fatalf("got %+v, want 5 aliases, dead %v", got, want)
	}

	missing, err := detect.EstimateLeaked(filepath.Join(slab, "nope"), memcg.Hierarchy{Root: root})
	if err != nil || missing.Available {
		t.Fatalf("missing slab dir: %+v, %v", missing, err)
	}
}

func TestDriver(t *testing.T) {
	tests := []struct {
		dirs                   []string
		wantDriver, wantKubepo string
		wantErr                bool
	}{
		{[]string{"kubepods/burstable"}, detect.DriverCgroupfs, "kubepods", false},
		{[]string{"kubepods.slice/kubepods-burstable.slice"}, detect.DriverSystemd, "kubepods.slice", false},
		{[]string{"system.slice"}, detect.DriverNone, "", false},
		{[]string{"kubepods", "kubepods.slice"}, "", "", true},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.dirs, ","), func(t *testing.T) {
			root := t.TempDir()
			for _, d := range tt.dirs {
				if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			d, k, err := detect.Driver(memcg.Hierarchy{Root: root})
			if (err != nil) != tt.wantErr || d != tt.wantDriver || k != tt.wantKubepo {
				t.Fatalf("Driver = %q, %q, %v; want %q, %q, err %v", d, k, err, tt.wantDriver, tt.wantKubepo, tt.wantErr)
			}
		})
	}
}

// fakeBinary writes a shell script that prints version and returns its path.
func fakeBinary(t *testing.T, dir, name, version string, exit int) string {
	t.Helper()
	p := filepath.Join(dir, name)
	script := "#!/bin/sh\nprintf '%s\\n' '" + version + "'\nexit " + string(rune('0'+exit)) + "\n"
	writeFile(t, p, script, 0o755)
	return p
}

func TestFindBinaries(t *testing.T) {
	testenv.RequireCommand(t, "sh")
	dir := t.TempDir()
	known := fakeBinary(t, dir, "docker-runc", "runc version 1.0.0-rc5 (release build)", 0)
	knownSum, err := detect.FileSHA256(known)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, version string
		exit          int
		want          string
	}{
		{"kubelet", "Kubernetes v1.12.4+nokmem", 0, detect.KindNokmem},
		{"kubelet", "Kubernetes v1.12.4", 0, detect.KindStock},
		{"kubelet", "hello world", 0, detect.KindUnknown},
		{"kubelet", "Kubernetes v1.12.4", 3, detect.KindUnknown},
		{"runc", "runc version 1.0.0-rc5+nokmem", 0, detect.KindNokmem},
		{"runc", "runc version 1.0.0-rc5", 0, detect.KindStock},
	}
	for _, tt := range tests {
		t.Run(tt.name+"/"+tt.version, func(t *testing.T) {
			d := t.TempDir()
			p := fakeBinary(t, d, tt.name, tt.version, tt.exit)
			bins, err := detect.FindBinaries(detect.BinaryOptions{
				SearchDirs: []string{filepath.Join(d, "nothing-here"), d},
				Paths:      map[string]string{"docker-runc": known},
				KnownSums:  map[string]string{knownSum: "docker-runc"},
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(bins) != 2 {
				t.Fatalf("found %d binaries, want 2: %+v", len(bins), bins)
			}
			b := bins[0]
			if b.Path != p || b.Kind != tt.want {
				t.Fatalf("got %+v, want kind %s at %s", b, tt.want, p)
			}
			if dr := bins[1]; dr.Name != "docker-runc" || dr.Kind != detect.KindNokmem || !strings.Contains(dr.Reason, "sha256") {
				t.Fatalf("docker-runc by known checksum: %+v", dr)
			}
		})
	}
}

func TestReadKnownSums(t *testing.T) {
	p := filepath.Join(t.TempDir(), "SHA256SUMS")
	sum := strings.Repeat("ab", 32)
	writeFile(t, p, sum+"  kubelet\n"+strings.Repeat("CD", 32)+" *runc\n", 0o644)
	m, err := detect.ReadKnownSums(p)
	if err != nil || m[sum] != "kubelet" || m[strings.Repeat("cd", 32)] != "runc" {
		t.Fatalf("got %v, %v", m, err)
	}
	writeFile(t, p, "zz kubelet\n", 0o644)
	if _, err := detect.ReadKnownSums(p); err == nil {
		t.Fatal("malformed SHA256SUMS accepted")
	}
}

// TestRealHierarchy runs the probes on this machine's memory hierarchy, on a
// scratch kubepods-like subtree: a modern kernel reads slabinfo empty, so it
// must not be taken for 3.10 semantics.
func TestRealHierarchy(t *testing.T) {
	testenv.RequireCgroupV1Memory(t)
	h := memcg.Hierarchy{Root: testenv.MemoryRoot}
	s, err := detect.ProbeSlabinfo(h)
	if err != nil {
		t.Fatal(err)
	}
	if s == memcg.SlabinfoEIO {
		t.Logf("this kernel has 3.10 semantics")
	}
	scratch := detect.ScratchName("test")
	if err := h.Mkdir(scratch); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.RemoveTree(scratch); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	if err := h.Mkdir(scratch + "/pod1"); err != nil {
		t.Fatal(err)
	}
	all, err := h.Walk(scratch)
	if err != nil {
		t.Fatal(err)
	}
	active, err := detect.KmemActive(h, all)
	if err != nil {
		t.Fatal(err)
	}
	// A fresh subtree under the root is never kmem-active on 3.10; on newer
	// kernels slabinfo is not EIO, so every cgroup reads as "active".
	if s == memcg.SlabinfoEIO && len(active) != 0 {
		t.Fatalf("fresh subtree kmem-active on 3.10 semantics: %v", active)
	}
	if s != memcg.SlabinfoEIO && len(active) != len(all) {
		t.Fatalf("KmemActive = %v, want all of %v when slabinfo reads %s", active, all, s)
	}
	p, err := detect.ProbeIDs(h, 50, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Exhausted && p.Created != 50 {
		t.Fatalf("ProbeIDs = %+v, want 50 created", p)
	}
	// No scratch probe left behind.
	kids, err := h.Children("")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range kids {
		if strings.HasPrefix(k, "nokmem-probe-") || strings.HasPrefix(k, "nokmem-ids-") {
			t.Errorf("probe cgroup left behind: %s", k)
		}
	}
}

func TestCheckProbeMemory(t *testing.T) {
	tests := []struct {
		name, meminfo string
		n             int
		wantErr       string
	}{
		{"fits", "MemTotal: 16000000 kB\nMemAvailable:    8000000 kB\n", 65535, ""},
		{"too big", "MemAvailable:    2000000 kB\n", 65535, "lower --probe-ids"},
		{"small probe on a small node", "MemAvailable: 200000 kB\n", 100, ""},
		{"no line", "MemTotal: 1 kB\n", 1, "no MemAvailable"},
		{"garbage", "MemAvailable: lots\n", 1, "MemAvailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "meminfo")
			writeFile(t, p, tt.meminfo, 0o644)
			err := detect.CheckProbeMemory(p, tt.n)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}
