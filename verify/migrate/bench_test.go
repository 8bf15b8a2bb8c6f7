package migrate_test

import (
	"fmt"
	"testing"

	"github.com/nokmem/nokmem/verify/cgtest"
	"github.com/nokmem/nokmem/verify/memcg"
	"github.com/nokmem/nokmem/verify/memcgsim"
	"github.com/nokmem/nokmem/verify/migrate"
)

// The 110-pod tree of the issue: QoS layout, 110 pods of 3 containers
// (1+2+110+330 = 443 cgroups) and 400 processes.
const (
	benchPods  = 110
	benchCtrs  = 3
	benchProcs = 400
)

// BenchmarkMigrateReal110Pods migrates the 110-pod tree with 400 real
// sleep processes on this machine's kernel. Every iteration migrates the
// tree left by the previous one (a fresh state dir; on a kernel without
// 3.10 slabinfo semantics the tree cannot be told clean, so it is redone).
func BenchmarkMigrateReal110Pods(b *testing.B) {
	tr := cgtest.Scratch(b)
	ctrs := tr.Kubepods(cgtest.QoS, benchPods, benchCtrs)
	for i := range benchProcs {
		tr.Sleep(ctrs[i%len(ctrs)])
	}
	h := memcg.Hierarchy{Root: tr.H.Path(tr.Base)}
	b.ResetTimer()
	for b.Loop() {
		e, err := migrate.New(migrate.Config{Hierarchy: h, Kubepods: "kubepods", StateDir: b.TempDir(), Logger: quiet()})
		if err != nil {
			b.Fatal(err)
		}
		rep, err := e.Migrate()
		if err != nil {
			b.Fatal(err)
		}
		if rep.Cgroups != 443 || rep.Processes != benchProcs {
			b.Fatalf("migrated %d cgroups, %d processes", rep.Cgroups, rep.Processes)
		}
		b.ReportMetric(float64(rep.BusyRetries), "busy-retries/op")
	}
}

// BenchmarkMigrateSim110Pods migrates a kmem-active 110-pod tree with 400
// simulated processes on the 3.10 simulator over FUSE (setup not timed).
func BenchmarkMigrateSim110Pods(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		s, m := memcgsim.MountForTest(b, memcgsim.RHEL78)
		h := memcg.Hierarchy{Root: m.Memory}
		mkdir := func(rel string) error {
			if err := h.Mkdir(rel); err != nil {
				return err
			}
			if rel == "kubepods" {
				return h.Write(rel, memcg.KmemLimit, "1")
			}
			return nil
		}
		ctrs := cgtest.BuildKubepods(b, mkdir, cgtest.QoS, benchPods, benchCtrs)
		for i := range benchProcs {
			if _, err := s.AddTask(ctrs[i%len(ctrs)], 1<<20); err != nil {
				b.Fatal(err)
			}
		}
		e, err := migrate.New(migrate.Config{Hierarchy: h, Kubepods: "kubepods", StateDir: b.TempDir(), Logger: quiet(),
			PidAlive: func(pid int) bool { _, err := s.TaskCgroup(pid); return err == nil }})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		rep, err := e.Migrate()
		if err != nil {
			b.Fatal(err)
		}
		if rep.Cgroups != 443 || rep.Processes != benchProcs {
			b.Fatalf("migrated %d cgroups, %d processes", rep.Cgroups, rep.Processes)
		}
	}
}

// BenchmarkBareReal measures the bare kernel operations a migration is
// made of, on this machine: mkdir+rmdir of one cgroup, and moving one
// process between two cgroups. A 443-cgroup, 400-process migration does
// 2×443 mkdir, 2×443 rmdir and 2×400 moves.
func BenchmarkBareReal(b *testing.B) {
	tr := cgtest.Scratch(b)
	tr.Mkdir("a", "b")
	b.Run("mkdir+rmdir", func(b *testing.B) {
		i := 0
		for b.Loop() {
			rel := tr.Rel(fmt.Sprintf("c%d", i))
			i++
			if err := tr.H.Mkdir(rel); err != nil {
				b.Fatal(err)
			}
			if err := tr.H.Rmdir(rel); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("read-setting", func(b *testing.B) {
		for b.Loop() {
			if _, err := tr.H.ReadString(tr.Rel("a"), memcg.Limit); err != nil {
				b.Fatal(err)
			}
		}
	})
	p := tr.Sleep("a")
	b.Run("move", func(b *testing.B) {
		dst := []string{tr.Rel("b"), tr.Rel("a")}
		i := 0
		for b.Loop() {
			if err := tr.H.Move(dst[i%2], p.Pid); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

// BenchmarkBareSim is BenchmarkBareReal on the simulator over FUSE.
func BenchmarkBareSim(b *testing.B) {
	s, m := memcgsim.MountForTest(b, memcgsim.RHEL78)
	h := memcg.Hierarchy{Root: m.Memory}
	for _, d := range []string{"a", "b"} {
		if err := h.Mkdir(d); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("mkdir+rmdir", func(b *testing.B) {
		for b.Loop() {
			if err := h.Mkdir("c"); err != nil {
				b.Fatal(err)
			}
			if err := h.Rmdir("c"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("read-setting", func(b *testing.B) {
		for b.Loop() {
			if _, err := h.ReadString("a", memcg.Limit); err != nil {
				b.Fatal(err)
			}
		}
	})
	pid, err := s.AddTask("a", 1<<20)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("move", func(b *testing.B) {
		dst := []string{"b", "a"}
		i := 0
		for b.Loop() {
			if err := h.Move(dst[i%2], pid); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}
