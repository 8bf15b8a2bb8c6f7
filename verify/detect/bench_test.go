package detect_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/nokmem/nokmem/internal/memcgsim"
	"github.com/nokmem/nokmem/internal/testenv"
	"github.com/nokmem/nokmem/verify/binary"
	"github.com/nokmem/nokmem/verify/detect"
	"github.com/nokmem/nokmem/verify/memcg"
)

// BenchmarkRunSimulator times a full detect (probe, walk, slabinfo of every
// cgroup, slab-alias estimate) of a 3.10 node with 300 kmem-active pod
// cgroups and 300 leaked IDs, through the FUSE mount.
func BenchmarkRunSimulator(b *testing.B) {
	_, m := memcgsim.MountForTest(b, memcgsim.RHEL78)
	h := memcg.Hierarchy{Root: m.Memory}
	for _, step := range []func() error{
		func() error { return h.Mkdir("kubepods") },
		func() error { return h.Write("kubepods", memcg.KmemLimit, "1") },
		func() error { return h.Mkdir("kubepods/burstable") },
	} {
		if err := step(); err != nil {
			b.Fatal(err)
		}
	}
	for i := range 300 {
		if err := h.Mkdir(fmt.Sprintf("kubepods/burstable/pod%d", i)); err != nil {
			b.Fatal(err)
		}
		gone := fmt.Sprintf("kubepods/burstable/job%d", i)
		if err := h.Mkdir(gone); err != nil {
			b.Fatal(err)
		}
		if err := h.Rmdir(gone); err != nil {
			b.Fatal(err)
		}
	}
	osr := filepath.Join(b.TempDir(), "osrelease")
	if err := os.WriteFile(osr, []byte("3.10.0-1127.el7.x86_64\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	o := detect.Options{Root: m.Memory, OSRelease: osr, ProcCgroups: m.ProcCgroups, SlabDir: m.Slab, Binaries: binary.Options{SearchDirs: []string{}}}
	b.ResetTimer()
	for b.Loop() {
		r, err := detect.Run(o)
		if err != nil {
			b.Fatal(err)
		}
		if len(r.KmemActive) != 302 || r.Leaked.IDs != 300 {
			b.Fatalf("active %d leaked %d", len(r.KmemActive), r.Leaked.IDs)
		}
	}
}

// BenchmarkProbeIDs times the ID-headroom probe on the real hierarchy, per
// scratch cgroup created and removed.
func BenchmarkProbeIDs(b *testing.B) {
	testenv.RequireCgroupV1Memory(b)
	h := memcg.Hierarchy{Root: testenv.MemoryRoot}
	for b.Loop() {
		p, err := detect.ProbeIDs(h, 1000, nil)
		if err != nil {
			b.Fatal(err)
		}
		if p.Created != 1000 {
			b.Fatalf("created %d", p.Created)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/id")
}
