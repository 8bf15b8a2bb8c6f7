package memcgtest_test

import (
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/nokmem/nokmem/internal/memcgsim"
	"github.com/nokmem/nokmem/internal/memcgtest"
	"github.com/nokmem/nokmem/verify/memcg"
)

const mib = 1 << 20

// nodes are the places the shared cgroup rules are tested: the simulator
// with each profile and a scratch cgroup on this machine's kernel.
var nodes = []struct {
	name string
	new  func(t *testing.T) *memcgtest.Node
}{
	{"sim-rhel7.8", func(t *testing.T) *memcgtest.Node { return memcgtest.Sim(t, memcgsim.RHEL78) }},
	{"sim-modern", func(t *testing.T) *memcgtest.Node { return memcgtest.Sim(t, memcgsim.Modern) }},
	{"real", func(t *testing.T) *memcgtest.Node { return memcgtest.Real(t) }},
}

// forNodes runs f once per node, each on a fresh tree.
func forNodes(t *testing.T, f func(t *testing.T, n *memcgtest.Node)) {
	for _, nn := range nodes {
		t.Run(nn.name, func(t *testing.T) { f(t, nn.new(t)) })
	}
}

// features detects what the node's kernel supports, in a scratch child of
// the node's cgroup.
func features(t *testing.T, n *memcgtest.Node) memcgtest.Features {
	t.Helper()
	f, err := memcgtest.ProbeFeatures(n.Scoped(), "probe")
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// swaps reports whether the kernel may swap instead of failing a limit
// below usage with EBUSY: swap is on, on the real kernel.
func swaps(t *testing.T, n *memcgtest.Node) bool {
	t.Helper()
	if n.Sim != nil {
		return false
	}
	b, err := os.ReadFile("/proc/swaps")
	if err != nil {
		t.Fatal(err)
	}
	return len(strings.Split(strings.TrimSpace(string(b)), "\n")) > 1
}

func wantErrno(t *testing.T, what string, err error, want syscall.Errno) {
	t.Helper()
	if want == 0 && err != nil {
		t.Errorf("%s: %v, want success", what, err)
	} else if want != 0 && !errors.Is(err, want) {
		t.Errorf("%s: %v, want %v", what, err, want)
	}
}

// TestRmdirRules: rmdir is EBUSY with tasks or child cgroups on every kernel
// (3.10 and 6.x mm/memcontrol.c, measured on 3.10, 6.1 and 6.18).
func TestRmdirRules(t *testing.T) {
	forNodes(t, func(t *testing.T, n *memcgtest.Node) {
		n.Mkdir("a", "a/b", "c")
		pid := n.Sleep("a/b").Pid
		wantErrno(t, "rmdir with a task", n.H.Rmdir(n.Rel("a/b")), syscall.EBUSY)
		wantErrno(t, "rmdir with a child", n.H.Rmdir(n.Rel("a")), syscall.EBUSY)
		if err := n.H.Move(n.Rel("c"), pid); err != nil {
			t.Fatal(err)
		}
		wantErrno(t, "rmdir of the emptied leaf", n.H.Rmdir(n.Rel("a/b")), 0)
		wantErrno(t, "rmdir of the childless parent", n.H.Rmdir(n.Rel("a")), 0)
	})
}

// TestMoveRules: cgroup.procs moves a whole thread group, tasks one thread,
// unknown pids are ESRCH (docs/memcg-v1-semantics.md §1f "Moving tasks").
func TestMoveRules(t *testing.T) {
	forNodes(t, func(t *testing.T, n *memcgtest.Node) {
		n.Mkdir("src", "dst")
		pid := n.StartThreaded("src", 3).Pid
		threads, err := n.H.Tasks(n.Rel("src"))
		if err != nil || len(threads) < 4 {
			t.Fatalf("tasks of src = %v, %v; want ≥4 threads", threads, err)
		}
		if err := n.H.Move(n.Rel("dst"), pid); err != nil {
			t.Fatal(err)
		}
		if procs, err := n.H.Procs(n.Rel("dst")); err != nil || !slices.Equal(procs, []int{pid}) {
			t.Errorf("dst procs = %v, %v; want [%d]", procs, err, pid)
		}
		// The Go runtime may start another thread at any time (in the
		// cgroup of the thread that starts it), so dst may hold more.
		if moved, err := n.H.Tasks(n.Rel("dst")); err != nil || !containsAll(moved, threads) {
			t.Errorf("dst tasks = %v, %v; want all of %v", moved, err, threads)
		}
		if left, err := n.H.Tasks(n.Rel("src")); err != nil || len(left) != 0 {
			t.Errorf("src tasks after the move = %v, %v", left, err)
		}
		// One thread back through tasks.
		var tid int
		for _, x := range threads {
			if x != pid {
				tid = x
				break
			}
		}
		wantErrno(t, "move one thread", n.H.MoveThread(n.Rel("src"), tid), 0)
		if left, _ := n.H.Tasks(n.Rel("src")); !slices.Equal(left, []int{tid}) {
			t.Errorf("src tasks = %v, want [%d]", left, tid)
		}
		wantErrno(t, "move an unknown pid", n.H.Move(n.Rel("dst"), 0x3ffffff0), syscall.ESRCH)
	})
}

// TestLimitOrdering: limit ≤ memsw.limit always, and a limit below the
// current usage is EBUSY (docs/memcg-v1-semantics.md §1f, measured in §2a
// and §3d).
func TestLimitOrdering(t *testing.T) {
	forNodes(t, func(t *testing.T, n *memcgtest.Node) {
		if !features(t, n).Memsw {
			t.Skip("no memsw files: swap accounting is off")
		}
		n.Mkdir("a")
		n.Write("a", memcg.Limit, "200M")
		wantErrno(t, "memsw below limit", n.H.Write(n.Rel("a"), memcg.MemswLimit, "100M"), syscall.EINVAL)
		n.Write("a", memcg.MemswLimit, "300M")
		wantErrno(t, "limit above memsw", n.H.Write(n.Rel("a"), memcg.Limit, "400M"), syscall.EINVAL)
		wantErrno(t, "unlimited limit above memsw", n.H.Write(n.Rel("a"), memcg.Limit, "-1"), syscall.EINVAL)
		n.Write("a", memcg.MemswLimit, "-1")
		wantErrno(t, "limit -1 after memsw -1", n.H.Write(n.Rel("a"), memcg.Limit, "-1"), 0)

		if swaps(t, n) {
			t.Skip("swap is on: a limit below usage swaps instead of failing")
		}
		n.StartThreaded("a", 0).Alloc(60)
		wantErrno(t, "limit below usage", n.H.Write(n.Rel("a"), memcg.Limit, "20M"), syscall.EBUSY)
		if v, err := n.H.ReadInt(n.Rel("a"), memcg.Limit); err != nil || v != memcg.Unlimited {
			t.Errorf("limit after EBUSY = %d, %v; want unchanged", v, err)
		}
	})
}

// TestUseHierarchyRules: under a hierarchical parent use_hierarchy cannot be
// turned off (docs/memcg-v1-semantics.md §1f: EINVAL on 3.10 and on ≥5.11);
// writing the same value is fine.
func TestUseHierarchyRules(t *testing.T) {
	forNodes(t, func(t *testing.T, n *memcgtest.Node) {
		n.Mkdir("a")
		if v, err := n.H.ReadInt(n.Rel("a"), memcg.UseHierarchy); err != nil || v != 1 {
			t.Fatalf("use_hierarchy of a child of a hierarchical parent = %d, %v", v, err)
		}
		wantErrno(t, "use_hierarchy=1 again", n.H.Write(n.Rel("a"), memcg.UseHierarchy, "1"), 0)
		wantErrno(t, "use_hierarchy=0", n.H.Write(n.Rel("a"), memcg.UseHierarchy, "0"), syscall.EINVAL)
	})
}

// TestMoveChargeRules branches on what Detect found
// (docs/memcg-v1-semantics.md §1d): 0..3 accepted up to 6.12 with ENOMEM when
// the destination cannot take a moved charge; only 0 from 6.13; 4 never.
func TestMoveChargeRules(t *testing.T) {
	forNodes(t, func(t *testing.T, n *memcgtest.Node) {
		feat := features(t, n)
		n.Mkdir("src", "dst")
		for v := range 4 {
			want := syscall.EINVAL
			if feat.MovesCharge(v) {
				want = 0
			}
			wantErrno(t, "move_charge "+strconv.Itoa(v), n.H.WriteInt(n.Rel("dst"), memcg.MoveCharge, int64(v)), want)
		}
		wantErrno(t, "move_charge 4", n.H.Write(n.Rel("dst"), memcg.MoveCharge, "4"), syscall.EINVAL)
		if !feat.MovesCharge(3) {
			return
		}
		p := n.StartThreaded("src", 0)
		p.Alloc(60)
		n.Write("dst", memcg.Limit, "10M")
		n.Write("dst", memcg.MoveCharge, "3")
		wantErrno(t, "move into a too small destination", n.H.Move(n.Rel("dst"), p.Pid), syscall.ENOMEM)
	})
}

// containsAll reports whether every element of want is in got.
func containsAll(got, want []int) bool {
	for _, w := range want {
		if !slices.Contains(got, w) {
			return false
		}
	}
	return true
}
