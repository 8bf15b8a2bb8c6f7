package memcgsim_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nokmem/nokmem/internal/memcgsim"
	"github.com/nokmem/nokmem/internal/memcgtest"
	"github.com/nokmem/nokmem/internal/testenv"
	"github.com/nokmem/nokmem/verify/memcg"
)

// task adds a simulated task charged usage bytes to cgroup rel.
func task(t *testing.T, n *memcgtest.Node, rel string, usage int64) int {
	t.Helper()
	pid, err := n.Sim.AddTask(rel, usage)
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func readInt(t *testing.T, n *memcgtest.Node, rel, file string) int64 {
	t.Helper()
	v, err := n.H.ReadInt(rel, file)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// wantErrno checks err against an errno; 0 means success.
func wantErrno(t *testing.T, err error, want syscall.Errno) {
	t.Helper()
	switch {
	case want == 0 && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want != 0 && !errors.Is(err, want):
		t.Fatalf("err = %v, want %v", err, want)
	}
}

const mib = 1 << 20

// TestRules drives the write/read rules of memcg-v1-semantics §1 and §3d,
// each through the mount. A case sets up state, does one operation and names
// the errno.
func TestRules(t *testing.T) {
	type tc struct {
		name    string
		profile memcgsim.Profile
		do      func(t *testing.T, e *memcgtest.Node) error
		want    syscall.Errno
		check   func(t *testing.T, e *memcgtest.Node)
	}
	slab := func(rel string) func(t *testing.T, e *memcgtest.Node) error {
		return func(t *testing.T, e *memcgtest.Node) error {
			_, err := e.H.ReadString(rel, memcg.KmemSlabinfo)
			return err
		}
	}
	active := func(rel string, want bool) func(t *testing.T, e *memcgtest.Node) {
		return func(t *testing.T, e *memcgtest.Node) {
			got, err := e.Sim.KmemActive(rel)
			if err != nil || got != want {
				t.Errorf("KmemActive(%q) = %v, %v; want %v", rel, got, err, want)
			}
		}
	}
	tests := []tc{
		// memcg-v1-semantics §1a / §3d "kubepods kmem.limit -1 only → rc 0,
		// slabinfo still EIO".
		{name: "kmem -1 does not activate", do: func(t *testing.T, e *memcgtest.Node) error {
			e.Mkdir("kubepods")
			return e.H.Write("kubepods", memcg.KmemLimit, "-1")
		}, check: func(t *testing.T, e *memcgtest.Node) {
			if _, err := e.H.ReadString("kubepods", memcg.KmemSlabinfo); !errors.Is(err, syscall.EIO) {
				t.Errorf("slabinfo after -1: %v, want EIO", err)
			}
			active("kubepods", false)(t, e)
		}},
		// memcg-v1-semantics §3d "runc sequence 1 then -1 → slabinfo OK:
		// header"; §1a sticky.
		{name: "runc sequence activates for good", do: func(t *testing.T, e *memcgtest.Node) error {
			e.Mkdir("kubepods")
			e.Write("kubepods", memcg.KmemLimit, "1")
			return e.H.Write("kubepods", memcg.KmemLimit, "-1")
		}, check: func(t *testing.T, e *memcgtest.Node) {
			s, err := e.H.ReadString("kubepods", memcg.KmemSlabinfo)
			if err != nil || !strings.HasPrefix(s, memcg.SlabinfoHeaderLine) || len(strings.Split(s, "\n")) != 2 {
				t.Errorf("slabinfo of active cgroup = %q, %v; want the 2-line header", s, err)
			}
			if v := readInt(t, e, "kubepods", memcg.KmemLimit); v != memcg.Unlimited {
				t.Errorf("kmem limit after -1 = %d", v)
			}
			active("kubepods", true)(t, e)
		}},
		// memcg-v1-semantics §3d "activation write on a cgroup that has a
		// task → EBUSY".
		{name: "activation with a task", do: func(t *testing.T, e *memcgtest.Node) error {
			e.Mkdir("kubepods")
			task(t, e, "kubepods", 0)
			return e.H.Write("kubepods", memcg.KmemLimit, "1")
		}, want: syscall.EBUSY, check: active("kubepods", false)},
		// memcg-v1-semantics §3d "activation write on a hierarchical cgroup
		// that has a child → EBUSY".
		{name: "activation with a child under use_hierarchy=1", do: func(t *testing.T, e *memcgtest.Node) error {
			e.Mkdir("kubepods", "kubepods/burstable")
			return e.H.Write("kubepods", memcg.KmemLimit, "1")
		}, want: syscall.EBUSY},
		// memcg-v1-semantics §1a: the child check applies only with
		// use_hierarchy=1.
		{name: "activation with a child under use_hierarchy=0", do: func(t *testing.T, e *memcgtest.Node) error {
			e.Write("", memcg.UseHierarchy, "0")
			e.Mkdir("a", "a/b")
			return e.H.Write("a", memcg.KmemLimit, "1")
		}, check: active("a", true)},
		// memcg-v1-semantics §3d "children created afterwards → slabinfo OK →
		// inherited activation".
		{name: "children inherit activation", do: func(t *testing.T, e *memcgtest.Node) error {
			e.Mkdir("kubepods")
			e.Write("kubepods", memcg.KmemLimit, "1")
			e.Mkdir("kubepods/burstable", "kubepods/burstable/podA")
			return slab("kubepods/burstable/podA")(t, e)
		}, check: active("kubepods/burstable/podA", true)},
		// memcg-v1-semantics §3d "root: write kmem.limit → EINVAL".
		{name: "root cannot be activated", do: func(t *testing.T, e *memcgtest.Node) error { return e.H.Write("", memcg.KmemLimit, "1") }, want: syscall.EINVAL},
		// memcg-v1-semantics §1b: root always EIO on 3.10, even with an
		// active child.
		{name: "root slabinfo EIO", do: func(t *testing.T, e *memcgtest.Node) error {
			e.Mkdir("kubepods")
			e.Write("kubepods", memcg.KmemLimit, "1")
			return slab("")(t, e)
		}, want: syscall.EIO},
		{name: "fresh cgroup slabinfo EIO", do: func(t *testing.T, e *memcgtest.Node) error { e.Mkdir("x"); return slab("x")(t, e) }, want: syscall.EIO},
		// memcg-v1-semantics §1a/§1b modern: writes are no-ops, slabinfo
		// always empty, kmem always on.
		{name: "modern kmem write is a no-op", profile: memcgsim.Modern, do: func(t *testing.T, e *memcgtest.Node) error {
			e.Mkdir("kubepods", "kubepods/x")
			task(t, e, "kubepods", 0)
			return e.H.Write("kubepods", memcg.KmemLimit, "1")
		}, check: func(t *testing.T, e *memcgtest.Node) {
			for _, rel := range []string{"", "kubepods"} {
				if s, err := e.H.ReadString(rel, memcg.KmemSlabinfo); err != nil || s != "" {
					t.Errorf("modern slabinfo of %q = %q, %v; want empty", rel, s, err)
				}
			}
			if v := readInt(t, e, "kubepods", memcg.KmemLimit); v != memcg.Unlimited {
				t.Errorf("modern kmem limit changed to %d", v)
			}
			active("kubepods", true)(t, e)
		}},

		// memcg-v1-semantics §3d "booted with cgroup.memory=nokmem: the runc
		// sequence returns 0 but nothing is activated; … with a task or with
		// children also return 0".
		{name: "nokmem boot flag ignores activation", profile: memcgsim.RHEL78NoKmem, do: func(t *testing.T, e *memcgtest.Node) error {
			e.Mkdir("kubepods", "kubepods/burstable")
			task(t, e, "kubepods", 0)
			e.Write("kubepods", memcg.KmemLimit, "1")
			return e.H.Write("kubepods", memcg.KmemLimit, "-1")
		}, check: func(t *testing.T, e *memcgtest.Node) {
			e.Mkdir("kubepods/burstable/podA")
			for _, rel := range []string{"kubepods", "kubepods/burstable", "kubepods/burstable/podA"} {
				if _, err := e.H.ReadString(rel, memcg.KmemSlabinfo); !errors.Is(err, syscall.EIO) {
					t.Errorf("nokmem slabinfo of %s: %v, want EIO", rel, err)
				}
			}
			if err := e.H.Rmdir("kubepods/burstable/podA"); err != nil || len(e.Sim.LeakedIDs()) != 0 {
				t.Errorf("rmdir: %v, leaked %v; want no leak", err, e.Sim.LeakedIDs())
			}
		}},

		// memcg-v1-semantics §1f rmdir: EBUSY with tasks or children.
		{name: "rmdir with a task", do: func(t *testing.T, e *memcgtest.Node) error { e.Mkdir("a"); task(t, e, "a", 0); return e.H.Rmdir("a") }, want: syscall.EBUSY},
		{name: "rmdir with a child", do: func(t *testing.T, e *memcgtest.Node) error { e.Mkdir("a", "a/b"); return e.H.Rmdir("a") }, want: syscall.EBUSY},
		{name: "modern rmdir with a child", profile: memcgsim.Modern, do: func(t *testing.T, e *memcgtest.Node) error { e.Mkdir("a", "a/b"); return e.H.Rmdir("a") }, want: syscall.EBUSY},
		{name: "rmdir of a charged leaf reparents", do: func(t *testing.T, e *memcgtest.Node) error {
			e.Mkdir("a", "a/b")
			pid := task(t, e, "a/b", 8*mib)
			if err := e.H.Move("a", pid); err != nil {
				return err
			}
			return e.H.Rmdir("a/b")
		}, check: func(t *testing.T, e *memcgtest.Node) {
			if v := readInt(t, e, "a", memcg.Usage); v != 8*mib {
				t.Errorf("parent usage after rmdir = %d, want the 8 MiB left behind", v)
			}
		}},

		// memcg-v1-semantics §1e / §3d force_empty.
		{name: "force_empty with a task", do: func(t *testing.T, e *memcgtest.Node) error {
			e.Mkdir("a")
			task(t, e, "a", 0)
			return e.H.Write("a", memcg.ForceEmpty, "0")
		}, want: syscall.EBUSY},
		{name: "force_empty with a child", do: func(t *testing.T, e *memcgtest.Node) error {
			e.Mkdir("a", "a/b")
			return e.H.Write("a", memcg.ForceEmpty, "0")
		}, want: syscall.EBUSY},
		{name: "force_empty on root", do: func(t *testing.T, e *memcgtest.Node) error { return e.H.Write("", memcg.ForceEmpty, "0") }, want: syscall.EINVAL},
		{name: "force_empty reparents charges", do: func(t *testing.T, e *memcgtest.Node) error {
			e.Mkdir("p", "p/leaf")
			pid := task(t, e, "p/leaf", 20*mib)
			e.Write("p", memcg.MoveCharge, "0")
			if err := e.H.Move("p", pid); err != nil {
				return err
			}
			if v := readInt(t, e, "p/leaf", memcg.Usage); v != 20*mib {
				t.Fatalf("leaf usage before force_empty = %d", v)
			}
			return e.H.Write("p/leaf", memcg.ForceEmpty, "0")
		}, check: func(t *testing.T, e *memcgtest.Node) {
			if v := readInt(t, e, "p/leaf", memcg.Usage); v != 0 {
				t.Errorf("leaf usage after force_empty = %d, want 0", v)
			}
			if v := readInt(t, e, "p", memcg.Usage); v != 20*mib {
				t.Errorf("parent usage after force_empty = %d, want 20 MiB", v)
			}
		}},
		{name: "modern force_empty never EBUSY", profile: memcgsim.Modern, do: func(t *testing.T, e *memcgtest.Node) error {
			e.Mkdir("a", "a/b")
			task(t, e, "a", mib)
			return e.H.Write("a", memcg.ForceEmpty, "0")
		}, check: func(t *testing.T, e *memcgtest.Node) {
			if v := readInt(t, e, "a", memcg.Usage); v != mib {
				t.Errorf("modern force_empty changed usage to %d", v)
			}
		}},

		// memcg-v1-semantics §1f use_hierarchy.
		{name: "use_hierarchy=0 under a hierarchical parent", do: func(t *testing.T, e *memcgtest.Node) error {
			e.Mkdir("a")
			return e.H.Write("a", memcg.UseHierarchy, "0")
		}, want: syscall.EINVAL},
		{name: "use_hierarchy same value", do: func(t *testing.T, e *memcgtest.Node) error {
			e.Mkdir("a")
			return e.H.Write("a", memcg.UseHierarchy, "1")
		}},
		{name: "use_hierarchy change with children", do: func(t *testing.T, e *memcgtest.Node) error {
			e.Mkdir("a")
			return e.H.Write("", memcg.UseHierarchy, "0")
		}, want: syscall.EBUSY},
		{name: "use_hierarchy set before children", do: func(t *testing.T, e *memcgtest.Node) error {
			e.Write("", memcg.UseHierarchy, "0")
			e.Mkdir("a")
			if v := readInt(t, e, "a", memcg.UseHierarchy); v != 0 {
				t.Fatalf("child did not inherit use_hierarchy=0 (reads %d)", v)
			}
			return e.H.Write("a", memcg.UseHierarchy, "1")
		}},
		{name: "use_hierarchy bad value", do: func(t *testing.T, e *memcgtest.Node) error { return e.H.Write("", memcg.UseHierarchy, "2") }, want: syscall.EINVAL},
		{name: "modern use_hierarchy=0", profile: memcgsim.Modern, do: func(t *testing.T, e *memcgtest.Node) error {
			e.Mkdir("a")
			return e.H.Write("a", memcg.UseHierarchy, "0")
		}, want: syscall.EINVAL},

		// memcg-v1-semantics §1d move_charge_at_immigrate.
		{name: "move_charge 4", do: func(t *testing.T, e *memcgtest.Node) error {
			e.Mkdir("a")
			for v := range 4 {
				e.Write("a", memcg.MoveCharge, strconv.Itoa(v))
			}
			return e.H.Write("a", memcg.MoveCharge, "4")
		}, want: syscall.EINVAL},
		{name: "modern move_charge 1", profile: memcgsim.Modern, do: func(t *testing.T, e *memcgtest.Node) error {
			e.Mkdir("a")
			e.Write("a", memcg.MoveCharge, "0")
			return e.H.Write("a", memcg.MoveCharge, "1")
		}, want: syscall.EINVAL},

		// memcg-v1-semantics §1f / §3d limit and memsw ordering.
		{name: "memsw below limit", do: func(t *testing.T, e *memcgtest.Node) error {
			e.Mkdir("a")
			e.Write("a", memcg.Limit, "200M")
			return e.H.Write("a", memcg.MemswLimit, "100M")
		}, want: syscall.EINVAL},
		{name: "limit above memsw", do: func(t *testing.T, e *memcgtest.Node) error {
			e.Mkdir("a")
			e.Write("a", memcg.Limit, "100M")
			e.Write("a", memcg.MemswLimit, "300M")
			return e.H.Write("a", memcg.Limit, "400M")
		}, want: syscall.EINVAL},
		{name: "unlimited limit above memsw", do: func(t *testing.T, e *memcgtest.Node) error {
			e.Mkdir("a")
			e.Write("a", memcg.Limit, "100M")
			e.Write("a", memcg.MemswLimit, "300M")
			return e.H.Write("a", memcg.Limit, "-1")
		}, want: syscall.EINVAL},
		{name: "memsw -1 then limit -1", do: func(t *testing.T, e *memcgtest.Node) error {
			e.Mkdir("a")
			e.Write("a", memcg.Limit, "100M")
			e.Write("a", memcg.MemswLimit, "300M")
			e.Write("a", memcg.MemswLimit, "-1")
			return e.H.Write("a", memcg.Limit, "-1")
		}},
		{name: "limit rounds down to pages", do: func(t *testing.T, e *memcgtest.Node) error {
			e.Mkdir("a")
			return e.H.Write("a", memcg.Limit, "1000000")
		}, check: func(t *testing.T, e *memcgtest.Node) {
			if v := readInt(t, e, "a", memcg.Limit); v != 999424 {
				t.Errorf("limit = %d, want 999424", v)
			}
		}},
		{name: "limit 0", do: func(t *testing.T, e *memcgtest.Node) error { e.Mkdir("a"); return e.H.Write("a", memcg.Limit, "0") }},
		{name: "root limit", do: func(t *testing.T, e *memcgtest.Node) error { return e.H.Write("", memcg.Limit, "1G") }, want: syscall.EINVAL},
		// memcg-v1-semantics §3d "limit 20M below 60 MB anon usage → EBUSY,
		// limit unchanged".
		{name: "limit below usage", do: func(t *testing.T, e *memcgtest.Node) error {
			e.Mkdir("a")
			task(t, e, "a", 60*mib)
			return e.H.Write("a", memcg.Limit, "20M")
		}, want: syscall.EBUSY, check: func(t *testing.T, e *memcgtest.Node) {
			if v := readInt(t, e, "a", memcg.Limit); v != memcg.Unlimited {
				t.Errorf("limit changed to %d after EBUSY", v)
			}
		}},
		{name: "soft limit", do: func(t *testing.T, e *memcgtest.Node) error {
			e.Mkdir("a")
			return e.H.Write("a", memcg.SoftLimit, "50M")
		}},

		// memcg-v1-semantics §1f / §3d swappiness and oom_control.
		{name: "swappiness 30", do: func(t *testing.T, e *memcgtest.Node) error {
			e.Mkdir("a")
			return e.H.Write("a", memcg.Swappiness, "30")
		}},
		{name: "swappiness 101", do: func(t *testing.T, e *memcgtest.Node) error {
			e.Mkdir("a")
			return e.H.Write("a", memcg.Swappiness, "101")
		}, want: syscall.EINVAL},
		{name: "modern swappiness 101", profile: memcgsim.Modern, do: func(t *testing.T, e *memcgtest.Node) error {
			e.Mkdir("a")
			return e.H.Write("a", memcg.Swappiness, "101")
		}},
		{name: "modern swappiness 201", profile: memcgsim.Modern, do: func(t *testing.T, e *memcgtest.Node) error {
			e.Mkdir("a")
			return e.H.Write("a", memcg.Swappiness, "201")
		}, want: syscall.EINVAL},
		// A child inherits swappiness at mkdir, also a value set back to the
		// default 60 under a parent at 30 (3.10 mem_cgroup_css_online, 6.x
		// mem_cgroup_css_alloc; measured on 6.18 cgroup v1).
		{name: "swappiness inherited", do: func(t *testing.T, e *memcgtest.Node) error {
			e.Mkdir("a")
			e.Write("a", memcg.Swappiness, "30")
			e.Mkdir("a/b")
			return e.H.Write("a/b", memcg.Swappiness, "60")
		}, check: func(t *testing.T, e *memcgtest.Node) {
			e.Mkdir("a/c")
			e.Mkdir("a/b/d")
			if v := readInt(t, e, "a/c", memcg.Swappiness); v != 30 {
				t.Errorf("a/c swappiness = %d, want 30 inherited from a", v)
			}
			if v := readInt(t, e, "a/b/d", memcg.Swappiness); v != 60 {
				t.Errorf("a/b/d swappiness = %d, want 60 inherited from a/b", v)
			}
		}},
		{name: "oom_control 1", do: func(t *testing.T, e *memcgtest.Node) error {
			e.Mkdir("a")
			return e.H.Write("a", memcg.OOMControl, "1")
		}, check: func(t *testing.T, e *memcgtest.Node) {
			e.Mkdir("a/b")
			if s, err := e.H.ReadString("a/b", memcg.OOMControl); err != nil || !strings.HasPrefix(s, "oom_kill_disable 1") {
				t.Errorf("child oom_control = %q, %v; want inherited oom_kill_disable 1", s, err)
			}
		}},
		{name: "oom_control 2", do: func(t *testing.T, e *memcgtest.Node) error {
			e.Mkdir("a")
			return e.H.Write("a", memcg.OOMControl, "2")
		}, want: syscall.EINVAL},

		// Tasks: the simulator's own pid table (memcg-v1-semantics §1d, §1f).
		{name: "move unknown pid", do: func(t *testing.T, e *memcgtest.Node) error { e.Mkdir("a"); return e.H.Move("a", 4242) }, want: syscall.ESRCH},
		{name: "move unknown thread", do: func(t *testing.T, e *memcgtest.Node) error { e.Mkdir("a"); return e.H.MoveThread("a", 4242) }, want: syscall.ESRCH},
		{name: "move garbage", do: func(t *testing.T, e *memcgtest.Node) error { e.Mkdir("a"); return e.H.Write("a", memcg.Procs, "abc") }, want: syscall.EINVAL},
		// memcg-v1-semantics §3d "move 60 MB task, dest move_charge=3 + 10M
		// limit → ENOMEM, task stays in source".
		{name: "move charge does not fit", do: func(t *testing.T, e *memcgtest.Node) error {
			e.Mkdir("src", "dst")
			pid := task(t, e, "src", 60*mib)
			e.Write("dst", memcg.Limit, "10M")
			e.Write("dst", memcg.MoveCharge, "3")
			err := e.H.Move("dst", pid)
			if got, _ := e.Sim.TaskCgroup(pid); got != "src" {
				t.Errorf("task in %q after failed move, want src", got)
			}
			return err
		}, want: syscall.ENOMEM},
		// memcg-v1-semantics §3d "same, dest unlimited → OK: source → 4 KB,
		// dest → 63 MB".
		{name: "move charge along", do: func(t *testing.T, e *memcgtest.Node) error {
			e.Mkdir("src", "dst")
			pid := task(t, e, "src", 60*mib)
			e.Write("dst", memcg.MoveCharge, "3")
			return e.H.Move("dst", pid)
		}, check: func(t *testing.T, e *memcgtest.Node) {
			if s, d := readInt(t, e, "src", memcg.Usage), readInt(t, e, "dst", memcg.Usage); s != 0 || d != 60*mib {
				t.Errorf("usage src=%d dst=%d, want 0 and 60 MiB", s, d)
			}
			if u, err := e.Sim.Usage("dst"); err != nil || u != 60*mib {
				t.Errorf("hidden usage of dst = %d, %v", u, err)
			}
		}},
		// memcg-v1-semantics §3d "move back with dest move_charge=0 → OK,
		// charge stays in the old cgroup".
		{name: "move without charge", do: func(t *testing.T, e *memcgtest.Node) error {
			e.Mkdir("src", "dst")
			e.Write("dst", memcg.Limit, "10M")
			return e.H.Move("dst", task(t, e, "src", 60*mib))
		}, check: func(t *testing.T, e *memcgtest.Node) {
			if s, d := readInt(t, e, "src", memcg.Usage), readInt(t, e, "dst", memcg.Usage); s != 60*mib || d != 0 {
				t.Errorf("usage src=%d dst=%d, want 60 MiB and 0", s, d)
			}
		}},
		{name: "procs moves every thread", do: func(t *testing.T, e *memcgtest.Node) error {
			e.Mkdir("src", "dst")
			pid := task(t, e, "src", 0)
			for range 2 {
				if _, err := e.Sim.AddThread(pid); err != nil {
					t.Fatal(err)
				}
			}
			return e.H.Move("dst", pid)
		}, check: func(t *testing.T, e *memcgtest.Node) {
			procs, err1 := e.H.Procs("dst")
			tasks, err2 := e.H.Tasks("dst")
			if err := errors.Join(err1, err2); err != nil || len(procs) != 1 || len(tasks) != 3 {
				t.Errorf("dst procs=%v tasks=%v (%v), want 1 process, 3 threads", procs, tasks, err)
			}
			if tasks, _ := e.H.Tasks("src"); len(tasks) != 0 {
				t.Errorf("threads left in src: %v", tasks)
			}
		}},
		{name: "tasks moves one thread", do: func(t *testing.T, e *memcgtest.Node) error {
			e.Mkdir("src", "dst")
			tid, err := e.Sim.AddThread(task(t, e, "src", 0))
			if err != nil {
				t.Fatal(err)
			}
			return e.H.MoveThread("dst", tid)
		}, check: func(t *testing.T, e *memcgtest.Node) {
			s, _ := e.H.Tasks("src")
			d, _ := e.H.Tasks("dst")
			if len(s) != 1 || len(d) != 1 {
				t.Errorf("tasks src=%v dst=%v, want one each", s, d)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := memcgtest.Sim(t, tt.profile)
			wantErrno(t, tt.do(t, e), tt.want)
			if tt.check != nil {
				tt.check(t, e)
			}
		})
	}
}

// TestIDs covers memcg-v1-semantics §1c: the ID space, its exhaustion errno,
// the leak of kmem-active cgroups and /proc/cgroups counting live cgroups
// only. (The model has no drop_caches: on RHEL 7.8 it released no leaked ID,
// §3d.)
func TestIDs(t *testing.T) {
	tests := []struct {
		profile   memcgsim.Profile
		exhausted syscall.Errno
		leaks     bool
	}{
		{memcgsim.RHEL78, syscall.ENOMEM, true},
		{memcgsim.RHELCSSID, syscall.ENOSPC, true},
		{memcgsim.Modern, syscall.ENOSPC, false},
	}
	for _, tt := range tests {
		t.Run(tt.profile.String(), func(t *testing.T) {
			e := memcgtest.Sim(t, tt.profile)
			e.Mkdir("kubepods")
			e.Write("kubepods", memcg.KmemLimit, "1")
			e.Mkdir("kubepods/pod1")
			task(t, e, "kubepods/pod1", 0) // a pod's process allocates from slab caches
			if err := e.Sim.Exit(firstPid(t, e, "kubepods/pod1")); err != nil {
				t.Fatal(err)
			}
			before := e.Sim.IDsInUse()
			if err := e.H.Rmdir("kubepods/pod1"); err != nil {
				t.Fatal(err)
			}
			leaked := e.Sim.LeakedIDs()
			if tt.leaks {
				if len(leaked) != 1 || e.Sim.IDsInUse() != before {
					t.Errorf("leaked %v, IDs in use %d→%d; want the pod's ID kept", leaked, before, e.Sim.IDsInUse())
				}
			} else if len(leaked) != 0 || e.Sim.IDsInUse() != before-1 {
				t.Errorf("leaked %v, IDs in use %d→%d; want the ID freed at rmdir", leaked, before, e.Sim.IDsInUse())
			}
			if s, err := os.ReadFile(e.Mount.ProcCgroups); err != nil || !strings.Contains(string(s), "memory\t1\t2\t1") {
				t.Errorf("/proc/cgroups = %q, %v; want 2 live cgroups (root, kubepods)", s, err)
			}
			aliases := slabAliases(t, e)
			if tt.leaks && !slices.Contains(aliases, "cred_jar(1:pod1)") {
				t.Errorf("slab aliases %v lack cred_jar(1:pod1) for the leaked pod", aliases)
			} else if !tt.leaks && len(aliases) != 0 {
				t.Errorf("modern kernel shows per-memcg aliases %v", aliases)
			}

			// Exhaust the (shrunk) ID space: the leaked ID is not given back.
			e.Sim.LimitIDs(6)
			n := 0
			var err error
			for ; n < 10; n++ {
				if err = e.H.Mkdir(fmt.Sprintf("fill%d", n)); err != nil {
					break
				}
			}
			wantErrno(t, err, tt.exhausted)
			want := 6 - 2 // root and kubepods are live
			if tt.leaks {
				want--
			}
			if n != want {
				t.Errorf("created %d cgroups before %v, want %d", n, err, want)
			}
		})
	}
}

// firstPid returns the first process in cgroup rel.
func firstPid(t *testing.T, e *memcgtest.Node, rel string) int {
	t.Helper()
	pids, err := e.H.Procs(rel)
	if err != nil || len(pids) == 0 {
		t.Fatalf("procs of %s: %v %v", rel, pids, err)
	}
	return pids[0]
}

// slabAliases lists the per-memcg entries "<cache>(<id>:<name>)" of the
// mounted /sys/kernel/slab.
func slabAliases(t *testing.T, e *memcgtest.Node) []string {
	t.Helper()
	ents, err := os.ReadDir(e.Mount.Slab)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range ents {
		if strings.HasSuffix(d.Name(), ")") {
			out = append(out, d.Name())
		}
	}
	return out
}

// TestLeakDemo is the demonstration (memcg-v1-semantics §3d, 300 real
// pods leaked exactly 300 IDs): 1,000 pod cgroups created and deleted under a
// kmem-active kubepods leak 1,000 IDs; under a fresh non-kmem kubepods none.
func TestLeakDemo(t *testing.T) {
	for _, kmem := range []bool{true, false} {
		t.Run(fmt.Sprintf("kmem=%v", kmem), func(t *testing.T) {
			e := memcgtest.Sim(t, memcgsim.RHEL78)
			e.Mkdir("kubepods", "kubepods/burstable")
			if kmem {
				// kubelet's libcontainer activates kmem on kubepods
				// (memcg-v1-semantics §1a); here before burstable exists, so
				// activate burstable directly.
				e.Write("kubepods/burstable", memcg.KmemLimit, "1")
				e.Write("kubepods/burstable", memcg.KmemLimit, "-1")
			}
			start := len(e.Sim.LeakedIDs())
			for i := range 1000 {
				pod := fmt.Sprintf("kubepods/burstable/pod%d", i)
				e.Mkdir(pod)
				if err := e.H.Rmdir(pod); err != nil {
					t.Fatal(err)
				}
			}
			leaked := len(e.Sim.LeakedIDs()) - start
			want := 0
			if kmem {
				want = 1000
			}
			if leaked != want {
				t.Errorf("leaked %d IDs, want %d", leaked, want)
			}
			ids := map[string]bool{}
			for _, a := range slabAliases(t, e) {
				if !strings.Contains(a, ":burstable)") {
					ids[a[strings.IndexByte(a, '(')+1:strings.IndexByte(a, ':')]] = true
				}
			}
			if len(ids) != want {
				t.Errorf("slab aliases name %d distinct kmemcg ids, want %d", len(ids), want)
			}
			if e.Sim.Live() != 3 {
				t.Errorf("live cgroups = %d, want 3", e.Sim.Live())
			}
		})
	}
}

// TestHook shows the fault/observer hook: it sees every operation, can
// fail one with any errno, and can fork tasks while a move is going on.
func TestHook(t *testing.T) {
	e := memcgtest.Sim(t, memcgsim.RHEL78)
	e.Mkdir("src", "dst")
	pid := task(t, e, "src", 0)
	var seen []memcgsim.Op
	var forked int
	e.Sim.SetHook(func(op memcgsim.Op) error {
		seen = append(seen, op)
		switch {
		case op.Kind == memcgsim.OpRmdir && op.Cgroup == "src":
			return syscall.EBUSY
		case op.Kind == memcgsim.OpMove && forked == 0:
			p, err := e.Sim.AddTask("src", 0) // a fork racing the move
			forked = p
			return err
		}
		return nil
	})
	if err := e.H.Move("dst", pid); err != nil {
		t.Fatal(err)
	}
	if procs, _ := e.H.Procs("src"); !slices.Equal(procs, []int{forked}) {
		t.Errorf("src procs = %v, want the forked %d", procs, forked)
	}
	if err := e.H.Move("dst", forked); err != nil {
		t.Fatal(err)
	}
	wantErrno(t, e.H.Rmdir("src"), syscall.EBUSY)
	e.Sim.SetHook(nil)
	wantErrno(t, e.H.Rmdir("src"), 0)
	want := memcgsim.Op{Kind: memcgsim.OpMove, Cgroup: "dst", File: memcg.Procs, Data: strconv.Itoa(pid), Pid: pid}
	if len(seen) == 0 || seen[0] != want {
		t.Errorf("first op seen = %+v, want %+v", seen, want)
	}
}

// TestReadOnly: a read-only cgroupfs fails writes with EROFS.
func TestReadOnly(t *testing.T) {
	e := memcgtest.Sim(t, memcgsim.RHEL78)
	e.Mkdir("a")
	e.Sim.ReadOnly(true)
	wantErrno(t, e.H.Write("a", memcg.Limit, "1G"), syscall.EROFS)
	wantErrno(t, e.H.Mkdir("b"), syscall.EROFS)
	wantErrno(t, e.H.Rmdir("a"), syscall.EROFS)
	if _, err := e.H.ReadInt("a", memcg.Limit); err != nil {
		t.Errorf("read on a read-only tree: %v", err)
	}
}

// TestShell runs real programs against the mount (memcg-v1-semantics §1b:
// "cat: read error: Input/output error" on an inactive cgroup), including the
// O_TRUNC|O_CREAT open of a shell redirection.
func TestShell(t *testing.T) {
	e := memcgtest.Sim(t, memcgsim.RHEL78)
	e.Mkdir("kubepods", "dst")
	pid := task(t, e, "kubepods", 0)
	out, err := exec.Command("cat", e.H.Path("kubepods", memcg.KmemSlabinfo)).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "Input/output error") {
		t.Errorf("cat slabinfo: %v %q, want an Input/output error", err, out)
	}
	sh := fmt.Sprintf("echo %d > %s && cat %s", pid, e.H.Path("dst", memcg.Procs), e.H.Path("dst", memcg.Procs))
	out, err = exec.Command("sh", "-c", sh).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != strconv.Itoa(pid) {
		t.Errorf("sh %q: %v %q", sh, err, out)
	}
	out, err = exec.Command("mkdir", "-p", e.H.Path("kubepods/burstable/podA")).CombinedOutput()
	if err != nil {
		t.Errorf("mkdir -p: %v %q", err, out)
	}
	out, err = exec.Command("ls", e.H.Path("kubepods/burstable")).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) == "" || !strings.Contains(string(out), "podA") {
		t.Errorf("ls: %v %q", err, out)
	}
}

// TestInodes: like cgroupfs, a cgroup keeps its directory inode number for
// its lifetime, also across a rename and on a fresh lookup, and a recreated
// cgroup gets a new one; the migrate step relies on this. Changes made
// through the Go API show through the mount at once: the mount invalidates
// the kernel's entry cache instead of letting it expire.
func TestInodes(t *testing.T) {
	e := memcgtest.Sim(t, memcgsim.RHEL78)
	ino := func(rel string) uint64 {
		t.Helper()
		var st syscall.Stat_t
		if err := syscall.Stat(e.H.Path(rel), &st); err != nil {
			t.Fatal(err)
		}
		return st.Ino
	}
	gone := func(rel string) {
		t.Helper()
		var st syscall.Stat_t
		if err := syscall.Stat(e.H.Path(rel), &st); !errors.Is(err, syscall.ENOENT) {
			t.Errorf("stat %s right after it went away through the Go API: %v, want ENOENT", rel, err)
		}
	}
	e.Mkdir("kubepods", "other")
	first := ino("kubepods")
	if ino("other") == first {
		t.Fatalf("two cgroups share inode %d", first)
	}
	// A name never looked up before: a fresh lookup, not the cache.
	if err := e.Sim.Rename("kubepods", "renamed"); err != nil {
		t.Fatal(err)
	}
	gone("kubepods")
	if again := ino("renamed"); again != first {
		t.Errorf("inode changed from %d to %d across a rename", first, again)
	}
	if err := e.H.Rename("renamed", "kubepods"); err != nil {
		t.Fatal(err)
	}
	if again := ino("kubepods"); again != first {
		t.Errorf("inode changed from %d to %d across a rename through the mount", first, again)
	}
	ino("other")
	if err := e.Sim.Rmdir("other"); err != nil {
		t.Fatal(err)
	}
	gone("other")
	if err := e.H.Rmdir("kubepods"); err != nil {
		t.Fatal(err)
	}
	e.Mkdir("kubepods")
	if again := ino("kubepods"); again == first {
		t.Errorf("recreated cgroup kept inode %d", first)
	}
}

// TestRename: the rename rules of 3.10 cgroup_rename and 6.18
// cgroup1_rename, through the mount, and what a renamed cgroup keeps.
func TestRename(t *testing.T) {
	tests := []struct {
		name    string
		profile memcgsim.Profile
		from    string
		to      string
		want    syscall.Errno
	}{
		{"in place", memcgsim.RHEL78, "a", "b", 0},
		{"target exists", memcgsim.RHEL78, "a", "c", syscall.EEXIST},
		{"target is a control file (VFS: a directory cannot replace a file)", memcgsim.RHEL78, "a", "tasks", syscall.ENOTDIR},
		{"other parent", memcgsim.RHEL78, "a/x", "c/x", syscall.EIO},
		{"up a level", memcgsim.RHEL78, "a/x", "x", syscall.EIO},
		{"control file", memcgsim.RHEL78, "a/" + memcg.Limit, "a/lim", syscall.ENOTDIR},
		{"missing", memcgsim.RHEL78, "nope", "b", syscall.ENOENT},
		{"newline, 3.10", memcgsim.RHEL78, "a", "b\nc", 0},
		{"newline, 6.18", memcgsim.Modern, "a", "b\nc", syscall.EINVAL},
		{"in place, 6.18", memcgsim.Modern, "a", "b", 0},
		{"other parent, 6.18", memcgsim.Modern, "a/x", "c/x", syscall.EIO},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := memcgtest.Sim(t, tt.profile)
			e.Mkdir("a", "a/x", "c")
			pid := task(t, e, "a/x", 1<<20)
			if err := e.H.Write("a/x", memcg.SoftLimit, "4096"); err != nil {
				t.Fatal(err)
			}
			to := tt.to
			wantErrno(t, e.H.Rename(tt.from, to), tt.want)
			if tt.want != 0 {
				return
			}
			x := to + "/x"
			if got, err := e.Sim.TaskCgroup(pid); err != nil || got != x {
				t.Errorf("task in %q (%v), want %q", got, err, x)
			}
			if v, err := e.H.ReadString(x, memcg.SoftLimit); err != nil || v != "4096" {
				t.Errorf("soft limit after the rename %q (%v)", v, err)
			}
			if u, err := e.Sim.Usage(to); err != nil || u != 1<<20 {
				t.Errorf("usage after the rename %d (%v)", u, err)
			}
			if ok, _ := e.H.Exists(tt.from); ok {
				t.Errorf("%s still exists", tt.from)
			}
		})
	}
}

// TestCosts: 3.10's force_empty on a kmem-active cgroup runs all its
// reclaim rounds (5 × congestion_wait(HZ/10) = 0.5 s of virtual time), on a
// cgroup without kmem it costs nothing; rmdir reparents by itself; every
// operation is counted by kind.
func TestCosts(t *testing.T) {
	e := memcgtest.Sim(t, memcgsim.RHEL78)
	e.Mkdir("kmem", "plain")
	if err := e.H.Write("kmem", memcg.KmemLimit, "-1"); err != nil {
		t.Fatal(err)
	}
	if err := e.H.Write("kmem", memcg.KmemLimit, "1"); err != nil {
		t.Fatal(err)
	}
	before := e.Sim.Costs()
	for _, rel := range []string{"kmem", "plain"} {
		if err := e.H.Write(rel, memcg.ForceEmpty, "0"); err != nil {
			t.Fatal(err)
		}
		if err := e.H.Rmdir(rel); err != nil {
			t.Fatal(err)
		}
	}
	c := e.Sim.Costs().Sub(before)
	if c.Virtual != 500*time.Millisecond || c.ForceEmpty != 2 || c.ForceEmptyStalls != 1 || c.Rmdir != 2 || c.Reparents != 2 || c.Write != 2 {
		t.Errorf("costs %v, want 0.5 s for the one kmem-active force_empty, 2 rmdirs that reparent", c)
	}
	if _, err := e.H.Procs(""); err != nil {
		t.Fatal(err)
	}
	if got := e.Sim.Costs().Sub(before); got.ReadPids != 1 || got.Read != 0 {
		t.Errorf("a cgroup.procs read counted as %v", got)
	}
}

// TestFullIDSpace fills the real-size ID space through the Go API (a FUSE
// round trip per mkdir would take minutes): memcg-v1-semantics §3d "created
// 65528, then mkdir → ENOMEM; 65528 + 6 live = 65534" on RHEL 7.8, 65535 IDs
// with css_id.
func TestFullIDSpace(t *testing.T) {
	tests := []struct {
		profile memcgsim.Profile
		ids     int
		errno   syscall.Errno
	}{
		{memcgsim.RHEL78, 65534, syscall.ENOMEM},
		{memcgsim.RHELCSSID, 65535, syscall.ENOSPC},
	}
	for _, tt := range tests {
		t.Run(tt.profile.String(), func(t *testing.T) {
			s := memcgsim.New(tt.profile)
			n := 0
			var err error
			for ; n <= tt.ids; n++ {
				if err = s.Mkdir(fmt.Sprintf("p%d", n)); err != nil {
					break
				}
			}
			wantErrno(t, err, tt.errno)
			if n != tt.ids-1 { // the root holds ID 1
				t.Errorf("created %d cgroups, want %d", n, tt.ids-1)
			}
			// Freeing one ID lets exactly one mkdir through again.
			if err := s.Rmdir("p100"); err != nil {
				t.Fatal(err)
			}
			wantErrno(t, s.Mkdir("again"), 0)
			wantErrno(t, s.Mkdir("again2"), tt.errno)
		})
	}
}

// TestUnmountBusy: a file left open keeps the mount busy; Unmount says so
// and still detaches it, so no mount outlives the test.
func TestUnmountBusy(t *testing.T) {
	testenv.RequireFUSE(t)
	dir := t.TempDir()
	m, err := memcgsim.New(memcgsim.RHEL78).Mount(dir)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(m.Memory + "/" + memcg.Limit)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := m.Unmount(); !errors.Is(err, syscall.EBUSY) {
		t.Errorf("Unmount with an open file: %v, want EBUSY", err)
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mounts), " "+dir+" ") {
		t.Errorf("%s is still mounted", dir)
	}
}
