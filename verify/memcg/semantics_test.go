package memcg_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nokmem/nokmem/internal/memcgsim"
	"github.com/nokmem/nokmem/internal/testenv"
	"github.com/nokmem/nokmem/verify/memcg"
)

// TestReadSemantics decides from the release and the root's slabinfo, on
// the simulator (the profile is the oracle), on plain directories for the
// kernels the simulator does not model, and never writes.
func TestReadSemantics(t *testing.T) {
	rhel, rm := memcgsim.MountForTest(t, memcgsim.RHEL78)
	modern, mm := memcgsim.MountForTest(t, memcgsim.Modern)
	for _, s := range []*memcgsim.Sim{rhel, modern} {
		s.ReadOnly(true) // ReadSemantics must work on a read-only mount
	}
	plain := func(slabinfo string) string {
		d := t.TempDir()
		if slabinfo != "" {
			if err := os.WriteFile(filepath.Join(d, memcg.KmemSlabinfo), []byte(slabinfo), 0o444); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	const el7, v618 = "3.10.0-1127.el7.x86_64", "6.18.44"
	tests := []struct {
		name, root, release string
		want                memcg.Kind
		wantSlab            memcg.Slabinfo
	}{
		{"rhel7.8", rm.Memory, el7, memcg.Kind310, memcg.SlabinfoEIO},
		{"6.18", mm.Memory, v618, memcg.KindModern, memcg.SlabinfoEmpty},
		{"EIO on a 6.x release", rm.Memory, v618, memcg.KindUnknown, memcg.SlabinfoEIO},
		{"empty on a 3.10 release", mm.Memory, el7, memcg.KindUnknown, memcg.SlabinfoEmpty},
		{"4.4 header", plain(memcg.SlabinfoHeaderLine + "\n"), "4.4.0-36-generic", memcg.KindModern, memcg.SlabinfoHeader},
		{"4.19 caches without header", plain("kmalloc-64 12 12 64 64 1 : tunables 0 0 0\n"), "4.19.0", memcg.KindModern, memcg.SlabinfoHeader},
		{"no slabinfo, 5.10", plain(""), "5.10.0-28-amd64", memcg.KindModern, memcg.SlabinfoMissing},
		{"no slabinfo, 4.6", plain(""), "4.6.0", memcg.KindUnknown, memcg.SlabinfoMissing},
		{"no slabinfo, 3.10", plain(""), el7, memcg.KindUnknown, memcg.SlabinfoMissing},
		{"garbage release", rm.Memory, "linux", memcg.KindUnknown, memcg.SlabinfoEIO},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := memcg.Hierarchy{Root: tt.root}.ReadSemantics(tt.release)
			if err != nil {
				t.Fatal(err)
			}
			if s.Kind != tt.want || s.RootSlabinfo != tt.wantSlab || s.Release != tt.release || s.Reason == "" {
				t.Fatalf("got %+v, want kind %s, root slabinfo %s", s, tt.want, tt.wantSlab)
			}
			if s.Leaks() != (tt.want == memcg.Kind310) {
				t.Fatalf("Leaks() = %v for %s", s.Leaks(), s.Kind)
			}
		})
	}
	if rhel.Live() != 1 || modern.Live() != 1 {
		t.Fatalf("ReadSemantics created cgroups: %d, %d live", rhel.Live(), modern.Live())
	}
}

// TestReadSemanticsRealKernel: this machine's kernel, judged against the
// release uname(2) reports (an oracle ReadSemantics does not use: it is
// given the release string, and the decision must follow the root's file).
func TestReadSemanticsRealKernel(t *testing.T) {
	testenv.RequireCgroupV1Memory(t)
	rel, err := memcg.ReadKernelRelease("")
	if err != nil {
		t.Fatal(err)
	}
	s, err := memcg.Hierarchy{Root: testenv.MemoryRoot}.ReadSemantics(rel)
	if err != nil {
		t.Fatal(err)
	}
	want := memcg.KindModern
	if strings.HasPrefix(rel, "3.") {
		want = memcg.Kind310
	}
	if s.Kind != want {
		t.Fatalf("kernel %s: %+v, want %s", rel, s, want)
	}
}

func TestReadKernelRelease(t *testing.T) {
	p := filepath.Join(t.TempDir(), "osrelease")
	for content, want := range map[string]string{"3.10.0-1127.el7.x86_64\n": "3.10.0-1127.el7.x86_64", "\n": ""} {
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := memcg.ReadKernelRelease(p)
		if got != want || (err != nil) != (want == "") {
			t.Errorf("ReadKernelRelease(%q) = %q, %v", content, got, err)
		}
	}
	if _, err := memcg.ReadKernelRelease(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing file accepted")
	}
}

// TestProbeSlabinfoOnSimulator checks the mkdir probe against the
// simulator's hidden state: the kernel profile decides the answer, and the
// probe gives back its ID.
func TestProbeSlabinfoOnSimulator(t *testing.T) {
	for _, tt := range []struct {
		p    memcgsim.Profile
		want memcg.Slabinfo
	}{{memcgsim.RHEL78, memcg.SlabinfoEIO}, {memcgsim.Modern, memcg.SlabinfoEmpty}} {
		t.Run(tt.p.String(), func(t *testing.T) {
			sim, m := memcgsim.MountForTest(t, tt.p)
			ids := sim.IDsInUse()
			s, err := memcg.Hierarchy{Root: m.Memory}.ProbeSlabinfo()
			if err != nil || s != tt.want {
				t.Fatalf("ProbeSlabinfo = %s, %v; want %s", s, err, tt.want)
			}
			if sim.IDsInUse() != ids || sim.Live() != 1 {
				t.Fatalf("probe left IDs %d (was %d), live %d", sim.IDsInUse(), ids, sim.Live())
			}
		})
	}
}
