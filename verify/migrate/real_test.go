package migrate_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nokmem/nokmem/internal/memcgtest"
	"github.com/nokmem/nokmem/verify/memcg"
	"github.com/nokmem/nokmem/verify/migrate"
)

// newRealNode builds a QoS kubepods tree in a scratch cgroup on this
// machine's memory hierarchy that acts as the memory root, with
// sleepsPerCtr sleeping processes in every container cgroup and a process
// with 4 extra threads in the first threadedCtrs of them.
func newRealNode(t testing.TB, pods, ctrs, sleepsPerCtr, threadedCtrs int) *fixture {
	t.Helper()
	tr := memcgtest.Real(t)
	n := newFixture(t, tr)
	ctrsRel := tr.Kubepods(memcgtest.QoS, pods, ctrs)
	for _, w := range [][3]string{
		{"kubepods", memcg.Limit, "4294967296"},
		{"kubepods/burstable", memcg.SoftLimit, "1073741824"},
		{"kubepods/besteffort", memcg.Swappiness, "20"},
		{ctrsRel[0], memcg.Limit, "536870912"},
		{ctrsRel[0], memcg.OOMControl, "1"},
	} {
		if err := tr.H.Write(tr.Rel(w[0]), w[1], w[2]); err != nil {
			t.Fatal(err)
		}
	}
	if ok, _ := tr.H.Exists(tr.Rel("kubepods")); ok {
		if _, err := tr.H.ReadString(tr.Rel("kubepods"), memcg.MemswLimit); err == nil {
			if err := tr.H.Write(tr.Rel("kubepods"), memcg.MemswLimit, "8589934592"); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i, c := range ctrsRel {
		rel := strings.TrimPrefix(c, "kubepods/")
		for range sleepsPerCtr {
			n.pids[tr.Sleep(c).Pid] = rel
		}
		if i < threadedCtrs {
			p := tr.StartThreaded(c, 4)
			n.pids[p.Pid] = rel
			n.threaded = append(n.threaded, p.Pid)
		}
	}
	return n
}

// memcgOf reads the memory cgroup of a thread from /proc.
func memcgOf(t *testing.T, procFile string) string {
	t.Helper()
	f, err := os.Open(procFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) == 3 && strings.Contains(","+parts[1]+",", ",memory,") {
			return parts[2]
		}
	}
	t.Fatalf("%s has no memory line", procFile)
	return ""
}

// checkReal asserts that every started process and every one of its
// threads is in the cgroup with the same relative path as before, by
// asking the kernel (/proc/<pid>/task/<tid>/cgroup).
func (n *fixture) checkReal(t *testing.T) {
	t.Helper()
	for pid, rel := range n.pids {
		want := "/" + n.node.Rel("kubepods/"+rel)
		tids, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			t.Fatalf("pid %d: %v", pid, err)
		}
		for _, tid := range tids {
			if got := memcgOf(t, filepath.Join("/proc", fmt.Sprint(pid), "task", tid.Name(), "cgroup")); got != want {
				t.Errorf("pid %d thread %s in %s, want %s", pid, tid.Name(), got, want)
			}
		}
	}
	for _, pid := range n.threaded {
		if tids, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid)); len(tids) < 5 {
			t.Errorf("threaded pid %d has %d threads, want ≥5", pid, len(tids))
		}
	}
	for _, left := range []string{migrate.TempName("kubepods"), migrate.AsideName("kubepods")} {
		if ok, err := n.h.Exists(left); err != nil || ok {
			t.Errorf("%s left (%v)", left, err)
		}
	}
}

func checksOK(t *testing.T, rep *migrate.Report) {
	t.Helper()
	for _, c := range rep.Checks {
		if !c.OK {
			t.Errorf("invariant %s: %s", c.Name, c.Detail)
		}
	}
}

func TestMigrateRealKernel(t *testing.T) {
	n := newRealNode(t, 6, 2, 2, 3)
	// A shell that forks short-lived children all the time: its children
	// appear in and vanish from cgroup.procs while the tree is drained.
	forker := n.node.Start("kubepods/burstable/pod0/ctr0", "sh", "-c", "while :; do /bin/true; done")
	n.pids[forker.Pid] = "burstable/pod0/ctr0"
	rep, err := n.engine(t, migrate.Hooks{}).Migrate()
	if err != nil {
		t.Fatal(err)
	}
	checksOK(t, rep)
	f, err := memcgtest.ProbeFeatures(memcg.Hierarchy{Root: n.h.Root}, "probe")
	if err != nil {
		t.Fatal(err)
	}
	if rep.MoveCharge != f.MovesCharge(3) {
		t.Errorf("charges moved: %v, but the kernel accepts move_charge_at_immigrate=3: %v", rep.MoveCharge, f.MovesCharge(3))
	}
	checkNames(t, rep, migrate.CheckPaths, migrate.CheckSettings, migrate.CheckPids, migrate.CheckNoTemp, migrate.CheckNewDir, migrate.CheckOldTree)
	n.checkReal(t)
	t.Logf("%d cgroups, %d processes, %d moves, %d exited, charges moved: %v, %s", rep.Cgroups, rep.Processes, rep.Moved, rep.Exited, rep.MoveCharge, rep.Duration)

	again, err := n.engine(t, migrate.Hooks{}).Migrate()
	if err != nil {
		t.Fatal(err)
	}
	if again.Outcome != migrate.OutcomeAlreadyMigrated {
		t.Errorf("rerun: %q %s, want a no-op", again.Outcome, again.Message)
	}
}

func TestKillRealKernel(t *testing.T) {
	tests := []struct {
		at     migrate.Phase
		finish string
	}{
		{migrate.PhaseBuilt, "rollback"},
		{migrate.PhaseMoved, "rerun"},
		{migrate.PhaseMoved, "rollback"},
		{migrate.PhaseSetAside, "rollback"},
		{migrate.PhaseSetAside, "rerun"},
		{migrate.PhaseSwapped, "rerun"},
	}
	for _, tt := range tests {
		t.Run(string(tt.at)+"/"+tt.finish, func(t *testing.T) {
			n := newRealNode(t, 3, 2, 1, 1)
			if !runUntilKilled(t, n.engine(t, killAt(tt.at)).Migrate) {
				t.Fatal("hook never fired")
			}
			e := n.engine(t, migrate.Hooks{})
			var rep *migrate.Report
			var err error
			if tt.finish == "rerun" {
				rep, err = e.Migrate()
			} else {
				rep, err = e.Rollback()
			}
			if err != nil {
				t.Fatal(err)
			}
			checksOK(t, rep)
			n.checkReal(t)
		})
	}
}
