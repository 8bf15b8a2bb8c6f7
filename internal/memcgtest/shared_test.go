package memcgtest_test

import (
	"errors"
	"os"
	"path"
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

// backend is one place the shared cgroup rules can be tested: a mounted
// simulator or a scratch cgroup on this machine's kernel.
type backend struct {
	h    memcg.Hierarchy
	base string // everything lives below this cgroup
	feat memcgtest.Features
	// proc starts a process with at least threads threads in cgroup rel and
	// returns its pid; alloc charges mib MiB more to it, in its cgroup, and
	// returns its pid again (the simulator replaces the task).
	proc  func(rel string, threads int) (pid int, alloc func(mib int) int)
	swaps bool // the kernel may swap instead of failing a limit with EBUSY
}

func (b *backend) p(rel string) string { return path.Join(b.base, rel) }

type newBackend func(t *testing.T) *backend

func simBackend(p memcgsim.Profile) newBackend {
	return func(t *testing.T) *backend {
		sim, m := memcgsim.MountForTest(t, p)
		b := &backend{h: memcg.Hierarchy{Root: m.Memory}}
		b.proc = func(rel string, threads int) (int, func(int) int) {
			pid, err := sim.AddTask(rel, 0)
			if err != nil {
				t.Fatal(err)
			}
			for range threads {
				if _, err := sim.AddThread(pid); err != nil {
					t.Fatal(err)
				}
			}
			// The model charges memory at task creation only: replace the
			// task by one with the usage, in the same cgroup.
			return pid, func(n int) int {
				cg, err := sim.TaskCgroup(pid)
				if err != nil {
					t.Fatal(err)
				}
				if err := sim.Exit(pid); err != nil {
					t.Fatal(err)
				}
				if pid, err = sim.AddTask(cg, int64(n)*mib); err != nil {
					t.Fatal(err)
				}
				return pid
			}
		}
		return b.detect(t, "probe")
	}
}

func realBackend(t *testing.T) *backend {
	tr := memcgtest.Scratch(t)
	b := &backend{h: tr.H, base: tr.Base}
	b.proc = func(rel string, threads int) (int, func(int) int) {
		th := tr.StartThreaded(rel, threads)
		return th.Pid, func(mib int) int { th.Alloc(tr, mib); return th.Pid }
	}
	swaps, err := os.ReadFile("/proc/swaps")
	if err != nil {
		t.Fatal(err)
	}
	b.swaps = len(strings.Split(strings.TrimSpace(string(swaps)), "\n")) > 1
	return b.detect(t, tr.Base+"-probe")
}

func (b *backend) detect(t *testing.T, scratch string) *backend {
	t.Helper()
	f, err := memcgtest.ProbeFeatures(b.h, scratch)
	if err != nil {
		t.Fatal(err)
	}
	b.feat = f
	return b
}

var backends = []struct {
	name string
	new  newBackend
}{
	{"sim-rhel7.8", simBackend(memcgsim.RHEL78)},
	{"sim-modern", simBackend(memcgsim.Modern)},
	{"real", realBackend},
}

// forBackends runs f once per backend, each on a fresh tree.
func forBackends(t *testing.T, f func(t *testing.T, b *backend)) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) { f(t, be.new(t)) })
	}
}

func mkdir(t *testing.T, b *backend, rels ...string) {
	t.Helper()
	for _, r := range rels {
		if err := b.h.Mkdir(b.p(r)); err != nil {
			t.Fatal(err)
		}
	}
}

func write(t *testing.T, b *backend, rel, file, v string) {
	t.Helper()
	if err := b.h.Write(b.p(rel), file, v); err != nil {
		t.Fatal(err)
	}
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
	forBackends(t, func(t *testing.T, b *backend) {
		mkdir(t, b, "a", "a/b", "c")
		pid, _ := b.proc("a/b", 0)
		wantErrno(t, "rmdir with a task", b.h.Rmdir(b.p("a/b")), syscall.EBUSY)
		wantErrno(t, "rmdir with a child", b.h.Rmdir(b.p("a")), syscall.EBUSY)
		if err := b.h.Move(b.p("c"), pid); err != nil {
			t.Fatal(err)
		}
		wantErrno(t, "rmdir of the emptied leaf", b.h.Rmdir(b.p("a/b")), 0)
		wantErrno(t, "rmdir of the childless parent", b.h.Rmdir(b.p("a")), 0)
	})
}

// TestMoveRules: cgroup.procs moves a whole thread group, tasks one thread,
// unknown pids are ESRCH (docs/memcg-v1-semantics.md §1f "Moving tasks").
func TestMoveRules(t *testing.T) {
	forBackends(t, func(t *testing.T, b *backend) {
		mkdir(t, b, "src", "dst")
		pid, _ := b.proc("src", 3)
		threads, err := b.h.Tasks(b.p("src"))
		if err != nil || len(threads) < 4 {
			t.Fatalf("tasks of src = %v, %v; want ≥4 threads", threads, err)
		}
		if err := b.h.Move(b.p("dst"), pid); err != nil {
			t.Fatal(err)
		}
		if procs, err := b.h.Procs(b.p("dst")); err != nil || !slices.Equal(procs, []int{pid}) {
			t.Errorf("dst procs = %v, %v; want [%d]", procs, err, pid)
		}
		// The Go runtime may start another thread at any time (in the
		// cgroup of the thread that starts it), so dst may hold more.
		if moved, err := b.h.Tasks(b.p("dst")); err != nil || !containsAll(moved, threads) {
			t.Errorf("dst tasks = %v, %v; want all of %v", moved, err, threads)
		}
		if left, err := b.h.Tasks(b.p("src")); err != nil || len(left) != 0 {
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
		wantErrno(t, "move one thread", b.h.MoveThread(b.p("src"), tid), 0)
		if left, _ := b.h.Tasks(b.p("src")); !slices.Equal(left, []int{tid}) {
			t.Errorf("src tasks = %v, want [%d]", left, tid)
		}
		wantErrno(t, "move an unknown pid", b.h.Move(b.p("dst"), 0x3ffffff0), syscall.ESRCH)
	})
}

// TestLimitOrdering: limit ≤ memsw.limit always, and a limit below the
// current usage is EBUSY (docs/memcg-v1-semantics.md §1f, measured in §2a
// and §3d).
func TestLimitOrdering(t *testing.T) {
	forBackends(t, func(t *testing.T, b *backend) {
		if !b.feat.Memsw {
			t.Skip("no memsw files: swap accounting is off")
		}
		mkdir(t, b, "a")
		write(t, b, "a", memcg.Limit, "200M")
		wantErrno(t, "memsw below limit", b.h.Write(b.p("a"), memcg.MemswLimit, "100M"), syscall.EINVAL)
		write(t, b, "a", memcg.MemswLimit, "300M")
		wantErrno(t, "limit above memsw", b.h.Write(b.p("a"), memcg.Limit, "400M"), syscall.EINVAL)
		wantErrno(t, "unlimited limit above memsw", b.h.Write(b.p("a"), memcg.Limit, "-1"), syscall.EINVAL)
		write(t, b, "a", memcg.MemswLimit, "-1")
		wantErrno(t, "limit -1 after memsw -1", b.h.Write(b.p("a"), memcg.Limit, "-1"), 0)

		if b.swaps {
			t.Skip("swap is on: a limit below usage swaps instead of failing")
		}
		_, alloc := b.proc("a", 0)
		alloc(60)
		wantErrno(t, "limit below usage", b.h.Write(b.p("a"), memcg.Limit, "20M"), syscall.EBUSY)
		if v, err := b.h.ReadInt(b.p("a"), memcg.Limit); err != nil || v != memcg.Unlimited {
			t.Errorf("limit after EBUSY = %d, %v; want unchanged", v, err)
		}
	})
}

// TestUseHierarchyRules: under a hierarchical parent use_hierarchy cannot be
// turned off (docs/memcg-v1-semantics.md §1f: EINVAL on 3.10 and on ≥5.11);
// writing the same value is fine.
func TestUseHierarchyRules(t *testing.T) {
	forBackends(t, func(t *testing.T, b *backend) {
		mkdir(t, b, "a")
		if v, err := b.h.ReadInt(b.p("a"), memcg.UseHierarchy); err != nil || v != 1 {
			t.Fatalf("use_hierarchy of a child of a hierarchical parent = %d, %v", v, err)
		}
		wantErrno(t, "use_hierarchy=1 again", b.h.Write(b.p("a"), memcg.UseHierarchy, "1"), 0)
		wantErrno(t, "use_hierarchy=0", b.h.Write(b.p("a"), memcg.UseHierarchy, "0"), syscall.EINVAL)
	})
}

// TestMoveChargeRules branches on what Detect found
// (docs/memcg-v1-semantics.md §1d): 0..3 accepted up to 6.12 with ENOMEM when
// the destination cannot take a moved charge; only 0 from 6.13; 4 never.
func TestMoveChargeRules(t *testing.T) {
	forBackends(t, func(t *testing.T, b *backend) {
		mkdir(t, b, "src", "dst")
		for v := range 4 {
			want := syscall.EINVAL
			if b.feat.MovesCharge(v) {
				want = 0
			}
			wantErrno(t, "move_charge "+strconv.Itoa(v), b.h.WriteInt(b.p("dst"), memcg.MoveCharge, int64(v)), want)
		}
		wantErrno(t, "move_charge 4", b.h.Write(b.p("dst"), memcg.MoveCharge, "4"), syscall.EINVAL)
		if !b.feat.MovesCharge(3) {
			return
		}
		_, alloc := b.proc("src", 0)
		pid := alloc(60)
		write(t, b, "dst", memcg.Limit, "10M")
		write(t, b, "dst", memcg.MoveCharge, "3")
		wantErrno(t, "move into a too small destination", b.h.Move(b.p("dst"), pid), syscall.ENOMEM)
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
