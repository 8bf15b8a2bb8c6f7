package memcgtest_test

import (
	"errors"
	"os"
	"slices"
	"syscall"
	"testing"

	"github.com/moby/sys/mountinfo"

	"github.com/nokmem/nokmem/internal/memcgsim"
	"github.com/nokmem/nokmem/internal/memcgtest"
)

// TestHarnessCleansUp builds both kubepods layouts with processes in them
// and checks, after the subtest's cleanup ran, that the processes are gone
// and no scratch cgroup is left.
func TestHarnessCleansUp(t *testing.T) {
	for _, l := range []memcgtest.Layout{memcgtest.QoS, memcgtest.Flat} {
		var base string
		var pids []int
		var tr *memcgtest.Node
		t.Run("layout", func(t *testing.T) {
			tr = memcgtest.Real(t)
			base = tr.Base
			ctrs := tr.Kubepods(l, 3, 2)
			if len(ctrs) != 6 {
				t.Fatalf("containers = %v", ctrs)
			}
			all, err := tr.H.Walk(tr.Rel("kubepods"))
			if err != nil {
				t.Fatal(err)
			}
			want := 1 + 3 + 6
			if l == memcgtest.QoS {
				want += 2
			}
			if len(all) != want {
				t.Errorf("walked %d cgroups, want %d: %v", len(all), want, all)
			}
			for _, c := range ctrs[:2] {
				pids = append(pids, tr.Sleep(c).Pid)
			}
			if procs, err := tr.H.Procs(tr.Rel(ctrs[0])); err != nil || !slices.Equal(procs, pids[:1]) {
				t.Errorf("procs of %s = %v, %v; want %v", ctrs[0], procs, err, pids[:1])
			}
		})
		if base == "" {
			continue // skipped: no cgroup v1 here
		}
		if _, err := os.Stat(tr.H.Path(base)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("scratch cgroup %s left behind (stat: %v)", base, err)
		}
		for _, pid := range pids {
			if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
				t.Errorf("pid %d still exists after cleanup (kill 0: %v)", pid, err)
			}
		}
	}
}

// TestSimNodeCleansUp: a simulator node with a tree and tasks in it is
// unmounted by the subtest's cleanup.
func TestSimNodeCleansUp(t *testing.T) {
	var mnt string
	t.Run("sim", func(t *testing.T) {
		n := memcgtest.Sim(t, memcgsim.RHEL78)
		mnt = n.Mount.Root
		for _, c := range n.Kubepods(memcgtest.QoS, 3, 2) {
			n.StartThreaded(c, 2)
		}
		if ok, err := mountinfo.Mounted(mnt); err != nil || !ok {
			t.Fatalf("simulator not mounted at %s: %v, %v", mnt, ok, err)
		}
	})
	if mnt == "" {
		return // skipped: no FUSE here
	}
	if ms, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(mnt)); err != nil || len(ms) != 0 {
		t.Errorf("simulator still mounted at %s after cleanup: %v, %v", mnt, ms, err)
	}
}
