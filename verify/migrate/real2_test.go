package migrate_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/nokmem/nokmem/internal/memcgsim"
	"github.com/nokmem/nokmem/internal/memcgtest"
	"github.com/nokmem/nokmem/verify/memcg"
	"github.com/nokmem/nokmem/verify/migrate"
)

// renameCases are the rename rules of cgroup v1 that the migration relies
// on (3.10 cgroup_rename, 6.18 cgroup1_rename).
var renameCases = []struct {
	name     string
	from, to string
	want     syscall.Errno
}{
	{"in place", "a", "b", 0},
	{"target exists", "a", "c", syscall.EEXIST},
	{"other parent", "a/x", "c/x", syscall.EIO},
	{"up a level", "a/x", "x", syscall.EIO},
	{"control file", "a/" + memcg.Limit, "a/lim", syscall.ENOTDIR},
	{"onto a control file", "a", memcg.Procs, syscall.ENOTDIR},
	{"missing", "nope", "b", syscall.ENOENT},
}

// TestRenameRulesRealKernel runs the rename rules on this machine's kernel
// in a scratch cgroup (which stands for the memory root) and on the
// simulator with the matching profile, and wants the same errno from both;
// a renamed cgroup keeps its process, its settings and its inode.
func TestRenameRulesRealKernel(t *testing.T) {
	for _, tc := range renameCases {
		t.Run(tc.name, func(t *testing.T) {
			tr := memcgtest.Real(t)
			real, sim := tr.Scoped(), memcgtest.Sim(t, memcgsim.Modern).H
			for _, h := range []memcg.Hierarchy{real, sim} {
				for _, d := range []string{"a", "a/x", "c"} {
					if err := h.Mkdir(d); err != nil {
						t.Fatal(err)
					}
				}
				if err := h.Write("a/x", memcg.SoftLimit, "4194304"); err != nil {
					t.Fatal(err)
				}
			}
			p := tr.Sleep("a/x")
			ino := func(h memcg.Hierarchy, rel string) uint64 {
				var st syscall.Stat_t
				if err := syscall.Stat(h.Path(rel), &st); err != nil {
					t.Fatal(err)
				}
				return st.Ino
			}
			before := ino(real, "a")
			errReal, errSim := real.Rename(tc.from, tc.to), sim.Rename(tc.from, tc.to)
			var got [2]syscall.Errno
			for i, err := range []error{errReal, errSim} {
				if err != nil && !errors.As(err, &got[i]) {
					t.Fatalf("%v has no errno", err)
				}
			}
			if got[0] != tc.want || got[1] != tc.want {
				t.Errorf("rename %s → %s: kernel %v, simulator %v, want %v", tc.from, tc.to, errReal, errSim, tc.want)
			}
			if tc.want != 0 {
				return
			}
			if ino(real, "b") != before {
				t.Error("the renamed cgroup has a new inode")
			}
			if got := memcgOf(t, fmt.Sprintf("/proc/%d/cgroup", p.Pid)); got != "/"+tr.Rel("b/x") {
				t.Errorf("process in %s after the rename, want /%s", got, tr.Rel("b/x"))
			}
			if v, err := real.ReadString("b/x", memcg.SoftLimit); err != nil || v != "4194304" {
				t.Errorf("soft limit after the rename %q (%v)", v, err)
			}
		})
	}
}

// TestSplitThreadsRealKernel: a process whose threads sit in two cgroups
// keeps that placement, thread by thread (it used to be regrouped).
func TestSplitThreadsRealKernel(t *testing.T) {
	n := newRealNode(t, 3, 2, 1, 1)
	pid := n.threaded[0]
	home := n.pids[pid]
	other := "burstable/pod0/ctr1"
	if home == other {
		t.Fatalf("test setup: threaded process already in %s", other)
	}
	tids, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	var apart []int
	for _, e := range tids[len(tids)-2:] {
		tid, _ := strconv.Atoi(e.Name())
		if tid == pid {
			continue
		}
		if err := n.h.MoveThread("kubepods/"+other, tid); err != nil {
			t.Fatal(err)
		}
		apart = append(apart, tid)
	}
	rep, err := n.engine(t, migrate.Hooks{}).Migrate()
	if err != nil {
		t.Fatal(err)
	}
	checksOK(t, rep)
	for _, e := range tids {
		tid, _ := strconv.Atoi(e.Name())
		want := "/" + n.node.Rel("kubepods/"+home)
		for _, a := range apart {
			if a == tid {
				want = "/" + n.node.Rel("kubepods/"+other)
			}
		}
		if got := memcgOf(t, filepath.Join("/proc", strconv.Itoa(pid), "task", e.Name(), "cgroup")); got != want {
			t.Errorf("thread %d in %s, want %s", tid, got, want)
		}
	}
	if len(rep.Regrouped) != 0 {
		t.Errorf("regrouped: %q", rep.Regrouped)
	}
}

// TestCleanupKilledRealKernel: the critical part, then a cleanup killed
// after a few rmdirs, then a rerun: the old tree is gone, every process and
// thread is in place, nothing is left beside kubepods.
func TestCleanupKilledRealKernel(t *testing.T) {
	n := newRealNode(t, 4, 2, 1, 2)
	if _, err := n.engine(t, migrate.Hooks{}).Critical(); err != nil {
		t.Fatal(err)
	}
	died := runUntilKilled(t, n.engine(t, migrate.Hooks{Removed: func(_ string, done, _ int) {
		if done == 4 {
			panic(killed{})
		}
	}}).Cleanup)
	if !died {
		t.Fatal("kill never fired")
	}
	rep, err := n.engine(t, migrate.Hooks{}).Migrate()
	if err != nil {
		t.Fatal(err)
	}
	checksOK(t, rep)
	if rep.Ops.ForceEmpty != 0 {
		t.Errorf("%d force_empty writes", rep.Ops.ForceEmpty)
	}
	n.checkReal(t)
}
