package migrate_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nokmem/nokmem/internal/memcgsim"
	"github.com/nokmem/nokmem/internal/memcgtest"
	"github.com/nokmem/nokmem/verify/memcg"
	"github.com/nokmem/nokmem/verify/migrate"
)

// The 110-pod tree of the issue: QoS layout, 110 pods of 3 containers
// (1+2+110+330 = 443 cgroups) and 400 processes.
const (
	benchPods  = 110
	benchCtrs  = 3
	benchProcs = 400
	// benchCgroups is 1 kubepods + 2 QoS classes + pods + containers.
	benchCgroups = 3 + benchPods + benchPods*benchCtrs
)

// BenchmarkMigrateReal110Pods migrates the 110-pod tree with 400 real
// sleep processes on this machine's kernel, then prints the operations by
// kind next to the floor's, the wall time of the critical part and of the
// cleanup, and the ratio to two floors (bareFloor): x-floor, the issue's
// floor (mkdir+rmdir per cgroup, one move per process, two renames, and one
// read of each settings file and pid list a migration must read), and
// x-bare-floor, the same without any read. Every iteration migrates the
// tree the previous one left (a fresh state dir) and measures the floors
// right after, so both see the same load on this shared machine; the ratios
// reported are the medians of the iterations' (minimum and maximum are
// printed too). Run it with -benchtime=Nx, N ≥ 5.
func BenchmarkMigrateReal110Pods(b *testing.B) {
	tr := memcgtest.Real(b)
	ctrs := tr.Kubepods(memcgtest.QoS, benchPods, benchCtrs)
	for i := range benchProcs {
		tr.Sleep(ctrs[i%len(ctrs)])
	}
	h := memcg.Hierarchy{Root: tr.H.Path(tr.Base)}
	floor := bareFloor(b, tr, h)
	var rep *migrate.Report
	var ratios, ratiosR, readsOnly []float64
	var walls, bares, withReads []time.Duration
	for b.Loop() {
		e, err := migrate.New(migrate.Config{Hierarchy: h, Kubepods: "kubepods", StateDir: b.TempDir(), Logger: quiet()})
		if err != nil {
			b.Fatal(err)
		}
		if rep, err = e.Migrate(); err != nil {
			b.Fatal(err)
		}
		if rep.Cgroups != benchCgroups || rep.Processes != benchProcs {
			b.Fatalf("migrated %d cgroups, %d processes", rep.Cgroups, rep.Processes)
		}
		b.StopTimer()
		bare, reads := floor()
		b.StartTimer()
		wall := rep.Critical + rep.Cleanup
		walls, bares, withReads = append(walls, wall), append(bares, bare), append(withReads, bare+reads)
		ratios = append(ratios, float64(wall)/float64(bare))
		ratiosR = append(ratiosR, float64(wall)/float64(bare+reads))
		readsOnly = append(readsOnly, float64(reads)/float64(bare))
	}
	b.StopTimer()
	b.Logf("real kernel, %d cgroups, %d processes, %d iterations", benchCgroups, benchProcs, len(ratios))
	b.Logf("operations  migration:          %v", rep.Ops)
	b.Logf("operations  floor, bare:        %v", floorOps)
	b.Logf("operations  floor, + one read:  %v", floorOps.Add(floorReadsOps))
	b.Logf("control-file reads+writes beyond mkdir/rmdir/rename/move: %d (of which move_charge arm/restore %d); pid-list reads %d",
		rep.Ops.Read+rep.Ops.Write, rep.Ops.ArmWrites, rep.Ops.ReadPids)
	b.Logf("last wall: critical %s, cleanup %s; median migration %s", rep.Critical.Round(time.Millisecond), rep.Cleanup.Round(time.Millisecond),
		medianDur(walls).Round(time.Millisecond))
	b.Logf("floor with one read of each file %s: ratio median %.2f (min %.2f, max %.2f)", medianDur(withReads).Round(time.Millisecond),
		median(ratiosR), slices.Min(ratiosR), slices.Max(ratiosR))
	b.Logf("bare floor (no reads) %s: ratio median %.2f (min %.2f, max %.2f)", medianDur(bares).Round(time.Millisecond),
		median(ratios), slices.Min(ratios), slices.Max(ratios))
	b.Logf("the one read of each file alone takes %.2fx the bare floor (median)", median(readsOnly))
	b.ReportMetric(median(ratiosR), "x-floor")
	b.ReportMetric(median(ratios), "x-bare-floor")
	b.ReportMetric(float64(rep.Ops.Read+rep.Ops.Write), "ctl-ops")
	b.ReportMetric(float64(rep.Ops.ReadPids), "pid-reads")
}

func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	return s[len(s)/2]
}

func medianDur(v []time.Duration) time.Duration {
	s := slices.Sorted(slices.Values(v))
	return s[len(s)/2]
}

// bareFloor prepares the bare syscalls of a 443-cgroup, 400-process
// migration on this kernel and returns a function that runs and times
// them: 443 mkdir+rmdir pairs, 400 moves, 2 renames, and no reads at all
// (bare); then, separately, one read of every file a migration cannot do
// without, in the cgroups of the tree at kubepods: the six copied settings
// and cgroup.procs of each cgroup (reads). bare+reads is the floor the
// issue measured on 3.10 ("mkdir+rmdir, reads, moves").
func bareFloor(b testing.TB, tr *memcgtest.Node, h memcg.Hierarchy) func() (bare, reads time.Duration) {
	b.Helper()
	tr.Mkdir("floor-a", "floor-b")
	p := tr.Sleep("floor-a")
	return func() (time.Duration, time.Duration) { return runFloor(b, tr.H, tr.Rel, p.Pid, h) }
}

// runFloor makes the floor's operations: on ops, benchCgroups mkdir+rmdir
// pairs, benchProcs moves of pid between floor-a and floor-b and two
// renames (names through at), timed as bare; then, timed as reads, one
// read of each floor setting and of cgroup.procs in every cgroup of
// kubepods in tree (the walk is not timed: it is not in the floor).
func runFloor(b testing.TB, ops memcg.Hierarchy, at func(string) string, pid int, tree memcg.Hierarchy) (bare, reads time.Duration) {
	b.Helper()
	start := time.Now()
	for i := range benchCgroups {
		rel := at(fmt.Sprintf("floor-%d", i))
		if err := ops.Mkdir(rel); err != nil {
			b.Fatal(err)
		}
		if err := ops.Rmdir(rel); err != nil {
			b.Fatal(err)
		}
	}
	dst := []string{at("floor-b"), at("floor-a")}
	for i := range benchProcs {
		if err := ops.Move(dst[i%2], pid); err != nil {
			b.Fatal(err)
		}
	}
	for _, names := range [][2]string{{"floor-b", "floor-c"}, {"floor-c", "floor-b"}} {
		if err := ops.Rename(at(names[0]), at(names[1])); err != nil {
			b.Fatal(err)
		}
	}
	bare = time.Since(start)
	all, err := tree.Walk("kubepods")
	if err != nil || len(all) != benchCgroups {
		b.Fatalf("walk kubepods: %d cgroups, %v", len(all), err)
	}
	start = time.Now()
	for _, rel := range all {
		for _, f := range floorSettings {
			if _, err := tree.ReadString(rel, f); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := tree.Procs(rel); err != nil {
			b.Fatal(err)
		}
	}
	return bare, time.Since(start)
}

// floorSettings are the settings a migration copies (migrate.Settings
// without use_hierarchy, which it reads on kubepods only).
var floorSettings = []string{memcg.Limit, memcg.MemswLimit, memcg.SoftLimit, memcg.Swappiness, memcg.OOMControl, memcg.MoveCharge}

// floorOps are the operations bareFloor makes, by kind: bare, then reads.
var (
	floorOps      = migrate.OpCounts{Mkdir: benchCgroups, Rmdir: benchCgroups, Move: benchProcs, Rename: 2}
	floorReadsOps = migrate.OpCounts{ReadPids: benchCgroups, Read: benchCgroups * len(floorSettings)}
)

// BenchmarkMigrateSim110Pods migrates a kmem-active 110-pod tree with 400
// simulated processes on the 3.10 simulator over FUSE (setup not timed)
// and prints the modelled 3.10 figures: operations by kind, the virtual
// time 3.10 would sleep (force_empty reclaim rounds), the kubelet downtime
// (critical part: wall time on the simulator, an upper bound of the kernel
// operations, plus the virtual sleep) and the cleanup time, as `verify run`
// does them (critical part, kubelet start, cleanup: two checks). Then the
// same tree on a fresh simulator as `verify migrate` does it (one run, one
// final check), and on that simulator the floors of BenchmarkMigrateReal110Pods
// (bare: mkdir+rmdir per cgroup, one move per process, two renames; and
// with one read of each settings file and pid list), with their operations
// as the simulator counted them and the ratios.
func BenchmarkMigrateSim110Pods(b *testing.B) {
	for range b.N {
		b.StopTimer()
		s, h := simTree(b)
		e, err := migrate.New(migrate.Config{Hierarchy: h, Kubepods: "kubepods", StateDir: b.TempDir(), Logger: quiet(),
			PidAlive: func(pid int) bool { _, err := s.TaskCgroup(pid); return err == nil }})
		if err != nil {
			b.Fatal(err)
		}
		before := s.Costs()
		b.StartTimer()
		crit, err := e.Critical()
		if err != nil {
			b.Fatal(err)
		}
		mid := s.Costs()
		clean, err := e.Cleanup()
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		after := s.Costs()
		if crit.Cgroups != benchCgroups || crit.Processes != benchProcs {
			b.Fatalf("migrated %d cgroups, %d processes", crit.Cgroups, crit.Processes)
		}
		c1, c2 := mid.Sub(before), after.Sub(mid)
		downtime, cleanup := crit.Critical+c1.Virtual, clean.Cleanup+c2.Virtual
		b.Logf("simulated 3.10, %d cgroups, %d processes", benchCgroups, benchProcs)
		b.Logf("verify run, critical part: %v", c1)
		b.Logf("verify run, cleanup:       %v", c2)
		b.Logf("control-file reads+writes beyond mkdir/rmdir/rename/move: %d (move_charge arm/restore %d of them)",
			c1.Settings()+c2.Settings(), clean.Ops.ArmWrites) // one engine: clean.Ops counts both parts
		b.Logf("modelled 3.10 kubelet downtime %s (simulator wall %s + 3.10 sleep %s); modelled cleanup %s (wall %s + sleep %s), kubelet running",
			downtime.Round(time.Millisecond), crit.Critical.Round(time.Millisecond), c1.Virtual, cleanup.Round(time.Millisecond), clean.Cleanup.Round(time.Millisecond), c2.Virtual)

		s, h = simTree(b)
		e, err = migrate.New(migrate.Config{Hierarchy: h, Kubepods: "kubepods", StateDir: b.TempDir(), Logger: quiet(),
			PidAlive: func(pid int) bool { _, err := s.TaskCgroup(pid); return err == nil }})
		if err != nil {
			b.Fatal(err)
		}
		before = s.Costs()
		rep, err := e.Migrate()
		if err != nil {
			b.Fatal(err)
		}
		full := s.Costs().Sub(before)
		wall := rep.Critical + rep.Cleanup + full.Virtual
		bare, reads, fb := simFloor(b, s, h)
		b.Logf("verify migrate (one run):  %v", full)
		b.Logf("floor on the simulator:    %v", fb)
		b.Logf("verify migrate wall %s; floor with one read of each file %s: ratio %.2f; bare floor %s: ratio %.2f",
			wall.Round(time.Millisecond), (bare + reads).Round(time.Millisecond), float64(wall)/float64(bare+reads),
			bare.Round(time.Millisecond), float64(wall)/float64(bare))
		b.ReportMetric(downtime.Seconds(), "downtime-s")
		b.ReportMetric(cleanup.Seconds(), "cleanup-s")
		b.ReportMetric(float64(c1.Settings()+c2.Settings()), "ctl-ops")
		b.ReportMetric(float64(wall)/float64(bare+reads), "x-floor")
		b.ReportMetric(float64(wall)/float64(bare), "x-bare-floor")
		b.StartTimer()
	}
}

// simTree mounts a fresh 3.10 simulator with the kmem-active 110-pod tree
// and its processes.
func simTree(b *testing.B) (*memcgsim.Sim, memcg.Hierarchy) {
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
	ctrs := memcgtest.BuildKubepods(b, mkdir, memcgtest.QoS, benchPods, benchCtrs)
	for i := range benchProcs {
		if _, err := s.AddTask(ctrs[i%len(ctrs)], 1<<20); err != nil {
			b.Fatal(err)
		}
	}
	return s, h
}

// simFloor is bareFloor on the simulator; it also returns the floor's
// operations as the simulator counted them.
func simFloor(b *testing.B, s *memcgsim.Sim, h memcg.Hierarchy) (bare, reads time.Duration, ops memcgsim.Costs) {
	for _, d := range []string{"floor-a", "floor-b"} {
		if err := h.Mkdir(d); err != nil {
			b.Fatal(err)
		}
	}
	pid, err := s.AddTask("floor-a", 1<<20)
	if err != nil {
		b.Fatal(err)
	}
	before := s.Costs()
	bare, reads = runFloor(b, h, func(rel string) string { return rel }, pid, h)
	return bare, reads, s.Costs().Sub(before)
}

// BenchmarkBareReal measures the bare kernel operations a migration is
// made of, on this machine: mkdir+rmdir of one cgroup, and moving one
// process between two cgroups. A 443-cgroup, 400-process migration does
// 2×443 mkdir, 2×443 rmdir and 2×400 moves.
func BenchmarkBareReal(b *testing.B) {
	tr := memcgtest.Real(b)
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
