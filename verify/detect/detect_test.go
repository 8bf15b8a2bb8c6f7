package detect_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nokmem/nokmem/internal/memcgsim"
	"github.com/nokmem/nokmem/internal/testenv"
	"github.com/nokmem/nokmem/verify/binary"
	"github.com/nokmem/nokmem/verify/detect"
	"github.com/nokmem/nokmem/verify/install"
	"github.com/nokmem/nokmem/verify/memcg"
	"github.com/nokmem/nokmem/verify/migrate"
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

// TestEstimateLeaked counts by kmemcg ID: a removed cgroup's ID is leaked
// even when a cgroup of the same name lives again (kubepods after a
// migration); a live cgroup's ID is read from its slabinfo where the kernel
// names it there, and where it prints root-cache names (RHEL 7.8) the
// cgroup owns exactly one aliased ID of its name. The count is exact when
// every live slabinfo was read, a lower bound otherwise.
func TestEstimateLeaked(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"kubepods/burstable/live1", "kubepods/besteffort", "system.slice"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// live1 lists its caches by memcg cache name (kmemcg ID 5); besteffort
	// lists caches under root-cache names (RHEL 7.8's cache_show: its ID is
	// one of 9 and 10); burstable lists no cache (it owns no alias);
	// kubepods and system.slice have no slabinfo here, like kmem-inactive
	// cgroups.
	writeFile(t, filepath.Join(root, "kubepods/burstable/live1", memcg.KmemSlabinfo),
		memcg.SlabinfoHeaderLine+"\n# name <active_objs>\ncred_jar(5:live1)    12     12    192   21    1 : tunables 0 0 0 : slabdata 1 1 0\n", 0o444)
	writeFile(t, filepath.Join(root, "kubepods/besteffort", memcg.KmemSlabinfo),
		memcg.SlabinfoHeaderLine+"\n# name <active_objs>\ncred_jar    12     12    192   21    1 : tunables 0 0 0 : slabdata 1 1 0\n", 0o444)
	writeFile(t, filepath.Join(root, "kubepods/burstable", memcg.KmemSlabinfo), memcg.SlabinfoHeaderLine+"\n", 0o444)
	slab := t.TempDir()
	for _, n := range []string{
		"cred_jar", ":t-0000192", // global caches: ignored
		"cred_jar(102:p99)", "dentry(102:p99)", // one dead memcg, two caches
		"cred_jar(103:p100)",
		"cred_jar(5:live1)", "dentry(5:live1)", // live cgroup: not leaked
		"kmalloc-64(7:burstable)", "kmalloc-64(8:burstable)", // the live burstable has no cache: both dead
		"cred_jar(9:besteffort)", "cred_jar(10:besteffort)", // one is the live besteffort's
		"cred_jar(2:kubepods)", // the old kubepods: leaked although "kubepods" lives again
	} {
		writeFile(t, filepath.Join(slab, n), "", 0o644)
	}
	got, err := detect.EstimateLeaked(slab, memcg.Hierarchy{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"2:kubepods", "7:burstable", "8:burstable", "102:p99", "103:p100"}
	if !got.Available || got.Aliases != 10 || got.IDs != 6 || !got.Exact || !slices.Equal(got.Dead, want) || got.LiveIDs != 1 || got.LiveOwners != 1 || got.LiveUnknown != 0 {
		t.Fatalf("got %+v, want 10 aliases, 6 leaked IDs, exact (5 certain %v and one of the two besteffort), 1 live ID, 1 live owner", got, want)
	}

	// A live cgroup whose slabinfo cannot be read makes it a lower bound.
	if err := os.MkdirAll(filepath.Join(root, "kubepods/besteffort/podX", memcg.KmemSlabinfo), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(slab, "cred_jar(11:podX)"), "", 0o644)
	got, err = detect.EstimateLeaked(slab, memcg.Hierarchy{Root: root})
	if err != nil || got.Exact || got.IDs != 6 || got.LiveUnknown != 1 || got.Basis() != "a lower bound" {
		t.Fatalf("unreadable slabinfo: %+v, %v; want 6 leaked IDs, a lower bound", got, err)
	}

	missing, err := detect.EstimateLeaked(filepath.Join(slab, "nope"), memcg.Hierarchy{Root: root})
	if err != nil || missing.Available {
		t.Fatalf("missing slab dir: %+v, %v", missing, err)
	}
}

func TestFindLeftovers(t *testing.T) {
	root, state := t.TempDir(), t.TempDir()
	for _, d := range []string{"kubepods", "nokmem-migrate-kubepods/pod1", "nokmem-migrate-old-kubepods", "nokmem-probe-x"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	h := memcg.Hierarchy{Root: root}
	l, err := detect.FindLeftovers(h, "")
	if err != nil || !slices.Equal(l.TempTrees, []string{"nokmem-migrate-kubepods", "nokmem-migrate-old-kubepods"}) || l.Journal != nil || l.Install != nil {
		t.Fatalf("without a state dir: %+v, %v", l, err)
	}
	tests := []struct {
		name, journal, install string
		wantUnfinished         bool
		wantSkipped            bool
		wantErr                bool
	}{
		{"moved-out", `{"phase":"moved-out","kubepods":"kubepods"}`, `{"signature_skipped":true}`, true, true, false},
		{"done", `{"phase":"done"}`, `{"entries":[]}`, false, false, false},
		{"rolled-back", `{"phase":"rolled-back"}`, `{"signature_skipped":false}`, false, false, false},
		{"garbage", `{"phase":`, `not json`, true, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			writeFile(t, filepath.Join(state, migrate.JournalFile), tt.journal, 0o600)
			writeFile(t, filepath.Join(state, install.RecordFile), tt.install, 0o600)
			l, err := detect.FindLeftovers(h, state)
			if err != nil {
				t.Fatal(err)
			}
			if l.Journal == nil || l.Journal.Unfinished != tt.wantUnfinished || (l.Journal.Error != "") != tt.wantErr {
				t.Errorf("journal %+v", l.Journal)
			}
			if l.Install == nil || l.Install.SignatureSkipped != tt.wantSkipped || (l.Install.Error != "") != tt.wantErr {
				t.Errorf("install %+v", l.Install)
			}
			r := &detect.Report{Leftovers: l}
			if n := len(r.Problems()); n != 1+boolInt(tt.wantUnfinished)+boolInt(tt.wantSkipped || tt.wantErr) {
				t.Errorf("problems %+v", r.Problems())
			}
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// fakeBinary writes a shell script that prints version and returns its path.
func fakeBinary(t *testing.T, dir, name, version string, exit int) string {
	t.Helper()
	p := filepath.Join(dir, name)
	script := "#!/bin/sh\nprintf '%s\\n' '" + version + "'\nexit " + string(rune('0'+exit)) + "\n"
	writeFile(t, p, script, 0o755)
	return p
}

// kernelLine returns major and minor of the running kernel from uname(2):
// an oracle independent of the memory hierarchy that detect reads.
func kernelLine(t *testing.T) (major, minor int) {
	t.Helper()
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	rel := unix.ByteSliceToString(u.Release[:])
	if _, err := fmt.Sscanf(rel, "%d.%d", &major, &minor); err != nil {
		t.Fatalf("uname release %q: %v", rel, err)
	}
	return major, minor
}

// TestRealHierarchy runs the probes on this machine's memory hierarchy, on a
// scratch kubepods-like subtree, and checks them against the kernel line
// from uname(2): 3.x reads EIO on a fresh cgroup, ≥5.9 an empty file
// (commit 4330a26bc452), and a modern kernel is never taken for 3.10.
func TestRealHierarchy(t *testing.T) {
	testenv.RequireCgroupV1Memory(t)
	major, minor := kernelLine(t)
	h := memcg.Hierarchy{Root: testenv.MemoryRoot}
	s, err := h.ProbeSlabinfo()
	if err != nil {
		t.Fatal(err)
	}
	var want memcg.Slabinfo
	switch {
	case major == 3:
		want = memcg.SlabinfoEIO
	case major > 5 || major == 5 && minor >= 9:
		want = memcg.SlabinfoEmpty
	}
	if want != "" && s != want {
		t.Fatalf("a fresh cgroup on kernel %d.%d reads slabinfo %s, want %s", major, minor, s, want)
	}
	if major >= 4 && s == memcg.SlabinfoEIO {
		t.Fatalf("kernel %d.%d read as 3.10 semantics", major, minor)
	}
	scratch := memcg.ScratchName("test")
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
	active, err := memcg.KmemActive(h, all, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A fresh subtree under the root is never kmem-active on 3.10; on newer
	// kernels slabinfo is not EIO, so every cgroup reads as "active".
	if major == 3 && len(active) != 0 {
		t.Fatalf("fresh subtree kmem-active on 3.10 semantics: %v", active)
	}
	if major >= 4 && len(active) != len(all) {
		t.Fatalf("KmemActive = %v, want all of %v on kernel %d.%d", active, all, major, minor)
	}
	// A small ID probe: never exhausts a real ID space (65535 IDs).
	p, err := detect.ProbeIDs(h, 50, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Exhausted || p.Created != 50 {
		t.Fatalf("ProbeIDs = %+v, want 50 created, not exhausted", p)
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

// TestProbeIDsExhausted: each way a full ID space fails mkdir (RHEL 7.8
// ENOMEM, css_id ENOSPC, 6.18 EBUSY) is reported as exhausted at the number
// of free IDs, and every probe cgroup is removed again.
func TestProbeIDsExhausted(t *testing.T) {
	for _, tt := range []struct {
		name  string
		p     memcgsim.Profile
		ebusy bool
		errno syscall.Errno
	}{
		{"rhel7.8 ENOMEM", memcgsim.RHEL78, false, syscall.ENOMEM},
		{"css_id ENOSPC", memcgsim.RHELCSSID, false, syscall.ENOSPC},
		{"6.18 EBUSY", memcgsim.Modern, true, syscall.EBUSY},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sim, m := memcgsim.MountForTest(t, tt.p)
			const free = 7
			sim.LimitIDs(sim.IDsInUse() + free)
			if tt.ebusy {
				// xa_alloc's -EBUSY, as 6.18 returns it for a full ID space.
				sim.SetHook(func(op memcgsim.Op) error {
					if op.Kind == memcgsim.OpMkdir && sim.IDsInUse() >= 1+free {
						return syscall.EBUSY
					}
					return nil
				})
			}
			p, err := detect.ProbeIDs(memcg.Hierarchy{Root: m.Memory}, 70000, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !p.Exhausted || p.Created != free || p.Errno != tt.errno.Error() || p.Cap != detect.MaxProbeIDs {
				t.Fatalf("ProbeIDs = %+v, want exhausted at %d with %q", p, free, tt.errno.Error())
			}
			if sim.Live() != 1 || sim.IDsInUse() != 1 {
				t.Fatalf("probe left %d live cgroups, %d IDs", sim.Live(), sim.IDsInUse())
			}
		})
	}
}

func TestCheckProbeMemory(t *testing.T) {
	tests := []struct {
		name, meminfo string
		n             int
		wantErr       string
	}{
		{"fits", "MemTotal: 16000000 kB\nMemAvailable:    8000000 kB\n", 65535, ""},
		{"too big", "MemAvailable:    2000000 kB\n", 65535, "more than half of MemAvailable"},
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

// TestIdentifyUpstream: a stock binary carries verify/affected's verdict
// on its version, and only an unaffected stock version is no problem on
// 3.10 semantics; a runc with known vulnerabilities (cves) is a problem on
// any kernel, a kubelet's are listed but no problem.
func TestIdentifyUpstream(t *testing.T) {
	testenv.RequireCommand(t, "sh")
	tests := []struct {
		name, version string
		kind, verdict string
		problem, cves bool
	}{
		{"kubelet", "Kubernetes v1.12.4", binary.KindStock, "affected", true, false},
		{"kubelet", "Kubernetes v1.12.4+nokmem.1bb862bb7552", binary.KindUnknown, "unknown", true, false},
		{"kubelet", "Kubernetes v1.21.1", binary.KindStock, "affected", true, false},
		{"kubelet", "Kubernetes v1.21.2", binary.KindStock, "unaffected", false, false},
		{"kubelet", "Kubernetes v1.8.15", binary.KindStock, "unknown", true, false},
		{"kubelet", "hello", binary.KindUnknown, "unknown", true, false},
		{"runc", "runc version 1.0.0-rc93\ncommit: 12644e614e25b05da6fd08a38ffa0cfe1903fdec", binary.KindStock, "affected", true, true},
		{"runc", "runc version 1.0.0-rc95\ncommit: b9ee9c6314599f1b4a7f497e1f1f856fe433d3b7", binary.KindStock, "unaffected", false, true},
		{"runc", "runc version 1.4.4", binary.KindStock, "unaffected", false, false},
		{"runc", "runc version 1.0.0-rc5+nokmem.1bb862bb7552", binary.KindUnknown, "unknown", true, true},
		{"docker-runc", "runc version 1.0.0-rc5+dev\ncommit: 69663f0bd4b60df09991c08812a60108003fa340\nspec: 1.0.0", binary.KindStock, "affected", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name+"/"+tt.version, func(t *testing.T) {
			p := fakeBinary(t, t.TempDir(), tt.name, tt.version, 0)
			b, err := binary.Identify(tt.name, p, binary.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if b.Kind != tt.kind || b.Verdict() != tt.verdict || b.Problem() != tt.problem {
				t.Fatalf("kind %s verdict %s problem %v (%+v); want %s %s %v", b.Kind, b.Verdict(), b.Problem(), b.Upstream, tt.kind, tt.verdict, tt.problem)
			}
			if (b.Upstream != nil) != (tt.kind == binary.KindStock) {
				t.Errorf("upstream %+v for kind %s", b.Upstream, b.Kind)
			}
			r := &detect.Report{Semantics: memcg.Semantics{Kind: memcg.Kind310}, Semantics310: true, Binaries: []binary.Binary{b}}
			want := 0
			for _, p := range []bool{tt.problem, tt.cves} {
				if p {
					want++
				}
			}
			if got := len(r.Problems()); got != want || (r.Status() == detect.ProblemFound) != (want > 0) {
				t.Errorf("problems %+v, status %d, want %d problems", r.Problems(), r.Status(), want)
			}
			if tt.problem && b.Upstream != nil && b.Upstream.Verdict == "affected" && !strings.Contains(r.Problems()[0].Text, "fix: ") {
				t.Errorf("problem text names no fix: %s", r.Problems()[0].Text)
			}
			r.Semantics, r.Semantics310 = memcg.Semantics{Kind: memcg.KindModern}, false
			if got := len(r.Problems()); (got == 1) != tt.cves || got > 1 {
				t.Errorf("modern kernel: problems %+v, want the CVEs only (%v)", r.Problems(), tt.cves)
			}
			if tt.cves && (!strings.Contains(r.Problems()[0].Text, "CVE-") || !strings.Contains(r.Problems()[0].Text, "fix: replace it with the maintained runc")) {
				t.Errorf("CVE problem: %s", r.Problems()[0].Text)
			}
		})
	}
}
