package migrate_test

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/nokmem/nokmem/internal/memcgsim"
	"github.com/nokmem/nokmem/internal/memcgtest"
	"github.com/nokmem/nokmem/verify/memcg"
	"github.com/nokmem/nokmem/verify/migrate"
)

// cg is one cgroup of a test tree with the settings written into it.
type cg struct {
	rel      string // relative to kubepods
	settings [][2]string
	tasks    int // processes; each gets one extra thread
}

// layouts are the kubelet cgroupfs trees the tests migrate.
var layouts = map[string][]cg{
	// --cgroups-per-qos=true: QoS classes, guaranteed pods directly below kubepods.
	"qos": {
		{rel: "", settings: [][2]string{{memcg.Limit, "8589934592"}, {memcg.MemswLimit, "8589934592"}}},
		{rel: "besteffort", settings: [][2]string{{memcg.Swappiness, "30"}}},
		{rel: "besteffort/podB"},
		{rel: "besteffort/podB/ctr3", tasks: 2},
		{rel: "besteffort/podE"},
		{rel: "besteffort/podE/empty"},
		{rel: "burstable", settings: [][2]string{{memcg.SoftLimit, "1073741824"}}},
		{rel: "burstable/podA", settings: [][2]string{{memcg.Limit, "1073741824"}, {memcg.MemswLimit, "2147483648"}}},
		{rel: "burstable/podA/ctr1", tasks: 2, settings: [][2]string{{memcg.Limit, "536870912"}}},
		{rel: "burstable/podA/ctr2", tasks: 1},
		{rel: "podG", settings: [][2]string{{memcg.Limit, "268435456"}, {memcg.MemswLimit, "268435456"}, {memcg.OOMControl, "1"}}},
		{rel: "podG/ctr4", tasks: 3},
	},
	// --cgroups-per-qos=false: pods directly below kubepods.
	"flat": {
		{rel: ""},
		{rel: "pod1", settings: [][2]string{{memcg.Limit, "104857600"}, {memcg.SoftLimit, "52428800"}}},
		{rel: "pod1/ctr1", tasks: 2},
		{rel: "pod2"},
		{rel: "pod2/ctr2", tasks: 1, settings: [][2]string{{memcg.Swappiness, "0"}}},
	},
	// Children set back to the kernel default under a parent that is not
	// at it: a new cgroup inherits swappiness and oom_kill_disable from its
	// parent at mkdir (3.10 mm/memcontrol.c mem_cgroup_css_online, 6.x
	// mem_cgroup_css_alloc), so 60 under 30 and 0 under 1 must be written.
	// The first two cgroups inherit as modelled, so the build trusts its
	// model from then on.
	"defaults": {
		{rel: ""},
		{rel: "besteffort", settings: [][2]string{{memcg.Swappiness, "30"}}},
		{rel: "besteffort/pod1", settings: [][2]string{{memcg.Swappiness, "60"}}},
		{rel: "besteffort/pod1/ctr", tasks: 1},
		{rel: "besteffort/pod2"},
		{rel: "besteffort/pod2/ctr", tasks: 1},
		{rel: "podG", settings: [][2]string{{memcg.OOMControl, "1"}}},
		{rel: "podG/ctr1", tasks: 1, settings: [][2]string{{memcg.OOMControl, "0"}}},
		{rel: "podG/ctr2", tasks: 1},
	},
	// A node without a kubepods tree.
	"none": nil,
}

// fixture is a kubepods tree on a test node (the simulator or a scratch
// cgroup on this machine's kernel) for migrate to move.
type fixture struct {
	node *memcgtest.Node
	sim  *memcgsim.Sim // node.Sim: nil on the kernel
	// h is the node's cgroup as the memory root: kubepods and the
	// temporary tree live directly below it.
	h        memcg.Hierarchy
	stateDir string
	tree     []cg // the layout built on the simulator
	// pids maps each process to its cgroup relative to kubepods.
	pids map[int]string
	// threaded are the processes started with extra threads (kernel).
	threaded []int
}

func newFixture(t testing.TB, node *memcgtest.Node) *fixture {
	return &fixture{node: node, sim: node.Sim, h: node.Scoped(), stateDir: t.TempDir(), pids: map[int]string{}}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newSimNode builds layout on a fresh 3.10 simulator the way kubelet and a
// stock runc would: kubepods gets the runc activation writes (1, then -1)
// before it has children, so the whole tree inherits kmem accounting.
// rootHierarchy false starts from the kernel default use_hierarchy=0 at the
// root, where kubepods must get use_hierarchy=1 before its children exist.
func newSimNode(t *testing.T, p memcgsim.Profile, layout string, rootHierarchy bool) *fixture {
	t.Helper()
	n := newFixture(t, memcgtest.Sim(t, p))
	s := n.sim
	n.tree = layouts[layout]
	if !rootHierarchy {
		n.must(t, n.h.Write("", memcg.UseHierarchy, "0"))
	}
	for _, c := range n.tree {
		rel := kp(c.rel)
		n.must(t, n.h.Mkdir(rel))
		if c.rel == "" {
			if !rootHierarchy {
				n.must(t, n.h.Write(rel, memcg.UseHierarchy, "1"))
			}
			n.must(t, n.h.Write(rel, memcg.KmemLimit, "1"))
			n.must(t, n.h.Write(rel, memcg.KmemLimit, "-1"))
		}
		for _, kv := range c.settings {
			n.must(t, n.h.Write(rel, kv[0], kv[1]))
		}
	}
	for _, c := range n.tree {
		for i := 0; i < c.tasks; i++ {
			pid, err := s.AddTask(kp(c.rel), 1<<20)
			n.must(t, err)
			_, err = s.AddThread(pid)
			n.must(t, err)
			n.pids[pid] = c.rel
		}
	}
	if p != memcgsim.Modern {
		for _, c := range n.tree {
			if ok, err := s.KmemActive(kp(c.rel)); err != nil || !ok {
				t.Fatalf("setup: %s not kmem-active (%v)", kp(c.rel), err)
			}
		}
	}
	return n
}

func kp(rel string) string {
	if rel == "" {
		return "kubepods"
	}
	return "kubepods/" + rel
}

func (n *fixture) must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("setup: %v", err)
	}
}

// config is migrate's configuration for the node. On the simulator a pid
// is alive while the model has its task; on the kernel migrate's own check
// runs.
func (n *fixture) config(h migrate.Hooks) migrate.Config {
	c := migrate.Config{Hierarchy: n.h, Kubepods: "kubepods", StateDir: n.stateDir, Logger: quiet(), Hooks: h}
	if n.sim != nil {
		c.PidAlive = func(pid int) bool { _, err := n.sim.TaskCgroup(pid); return err == nil }
	}
	return c
}

func (n *fixture) engine(t testing.TB, h migrate.Hooks) *migrate.Engine {
	t.Helper()
	e, err := migrate.New(n.config(h))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// settings reads every copied setting of the tree, keyed by relative path.
func (n *fixture) settings(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, c := range n.tree {
		var parts []string
		for _, f := range []string{memcg.UseHierarchy, memcg.Limit, memcg.MemswLimit, memcg.SoftLimit, memcg.Swappiness, memcg.OOMControl, memcg.MoveCharge} {
			v, err := n.h.ReadString(kp(c.rel), f)
			if err != nil {
				t.Fatalf("read settings: %v", err)
			}
			parts = append(parts, f+"="+v)
		}
		out[c.rel] = strings.Join(parts, " ")
	}
	return out
}

// checkMigrated asserts the end state of a finished migration or rollback:
// same paths, settings and pid placement, no temp tree, and (after a
// migration on 3.10) every cgroup reading EIO from slabinfo.
func (n *fixture) checkEnd(t *testing.T, before map[string]string, wantClean bool) {
	t.Helper()
	all, err := n.h.Walk("kubepods")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, c := range n.tree {
		want = append(want, kp(c.rel))
	}
	slices.Sort(all)
	slices.Sort(want)
	if !slices.Equal(all, want) {
		t.Errorf("cgroups after: %q, want %q", all, want)
	}
	if got := n.settings(t); !mapsEqual(got, before) {
		t.Errorf("settings changed:\n got %v\nwant %v", got, before)
	}
	for pid, rel := range n.pids {
		got, err := n.sim.TaskCgroup(pid)
		if err != nil {
			t.Errorf("pid %d lost: %v", pid, err)
		} else if got != kp(rel) {
			t.Errorf("pid %d in %s, want %s", pid, got, kp(rel))
		}
	}
	for _, left := range []string{migrate.TempName("kubepods"), migrate.AsideName("kubepods")} {
		if ok, err := n.h.Exists(left); err != nil || ok {
			t.Errorf("%s still there (%v)", left, err)
		}
	}
	if !wantClean {
		return
	}
	for _, c := range n.tree {
		st, err := n.h.SlabinfoState(kp(c.rel))
		if err != nil || st != memcg.SlabinfoEIO {
			t.Errorf("%s slabinfo = %q (%v), want EIO (kmem inactive)", kp(c.rel), st, err)
		}
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestMigrateSim(t *testing.T) {
	tests := []struct {
		layout        string
		rootHierarchy bool
	}{
		{"qos", true},
		{"qos", false},
		{"flat", true},
		{"flat", false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/root-use_hierarchy=%v", tt.layout, tt.rootHierarchy), func(t *testing.T) {
			n := newSimNode(t, memcgsim.RHEL78, tt.layout, tt.rootHierarchy)
			before := n.settings(t)
			rep, err := n.engine(t, migrate.Hooks{}).Migrate()
			if err != nil {
				t.Fatal(err)
			}
			if rep.Outcome != migrate.OutcomeMigrated || !rep.MoveCharge {
				t.Errorf("outcome %q move_charge %v, want migrated with charges", rep.Outcome, rep.MoveCharge)
			}
			for _, c := range rep.Checks {
				if !c.OK {
					t.Errorf("invariant %s: %s", c.Name, c.Detail)
				}
			}
			checkNames(t, rep, migrate.CheckPaths, migrate.CheckSettings, migrate.CheckPids, migrate.CheckNoTemp, migrate.CheckNewDir, migrate.CheckOldTree)
			if c := n.sim.Costs(); c.ForceEmpty != 0 {
				t.Errorf("%d force_empty writes: rmdir reparents by itself on 3.10", c.ForceEmpty)
			}
			n.checkCharges(t)
			n.checkEnd(t, before, true)
			if leaked := n.sim.LeakedIDs(); len(leaked) != len(n.tree) {
				t.Errorf("%d leaked IDs, want the %d old kmem-active cgroups (the recipe stops new leaks only)", len(leaked), len(n.tree))
			}

			again, err := n.engine(t, migrate.Hooks{}).Migrate()
			if err != nil {
				t.Fatal(err)
			}
			if again.Outcome != migrate.OutcomeAlreadyMigrated || !strings.Contains(again.Message, "nothing to do") {
				t.Errorf("rerun: %q %q, want a no-op that says so", again.Outcome, again.Message)
			}
		})
	}
}

// TestMigrateModernSim: a kernel without move_charge_at_immigrate (≥6.13)
// migrates without moving charges.
func TestMigrateModernSim(t *testing.T) {
	n := newSimNode(t, memcgsim.Modern, "qos", true)
	before := n.settings(t)
	rep, err := n.engine(t, migrate.Hooks{}).Migrate()
	if err != nil {
		t.Fatal(err)
	}
	if rep.MoveCharge {
		t.Error("move_charge reported as used on a kernel that rejects it")
	}
	n.checkEnd(t, before, false)
}

// killed is the panic value the hooks use to stop a run dead, as kill -9
// would: nothing of the engine runs after it.
type killed struct{ at migrate.Phase }

// runUntilKilled runs f and reports whether a hook killed it.
func runUntilKilled(t *testing.T, f func() (*migrate.Report, error)) (died bool) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(killed); !ok {
				panic(r)
			}
			died = true
		}
	}()
	if _, err := f(); err != nil {
		t.Fatalf("run before the kill: %v", err)
	}
	return false
}

func killAt(p migrate.Phase) migrate.Hooks {
	return migrate.Hooks{AfterPhase: func(q migrate.Phase) error {
		if q == p {
			panic(killed{p})
		}
		return nil
	}}
}

func TestKillAtEveryPhaseThenRerun(t *testing.T) {
	for _, p := range migrate.Phases() {
		for _, finish := range []string{"rerun", "rollback"} {
			t.Run(string(p)+"/"+finish, func(t *testing.T) {
				n := newSimNode(t, memcgsim.RHEL78, "qos", false)
				before := n.settings(t)
				if !runUntilKilled(t, n.engine(t, killAt(p)).Migrate) {
					t.Fatalf("hook at %s never fired", p)
				}
				e := n.engine(t, migrate.Hooks{})
				var rep *migrate.Report
				var err error
				if finish == "rerun" {
					rep, err = e.Migrate()
				} else {
					rep, err = e.Rollback()
				}
				if p == migrate.PhaseSwapped && finish == "rollback" {
					// Refused, naming the cause and the action that works.
					if !errors.Is(err, migrate.ErrRollbackAfterSwap) || !strings.Contains(err.Error(), "next: run `verify migrate`") {
						t.Fatalf("rollback after the swap: %v, want a refusal that says to finish", err)
					}
					rep, err = n.engine(t, migrate.Hooks{}).Migrate()
					finish = "rerun"
				}
				if err != nil {
					t.Fatalf("%s after a kill at %s: %v", finish, p, err)
				}
				for _, c := range rep.Checks {
					if !c.OK {
						t.Errorf("invariant %s: %s", c.Name, c.Detail)
					}
				}
				// After the old tree is gone (or the run finished) the
				// new tree is clean whichever way it ends.
				clean := finish == "rerun" || p == migrate.PhaseSwapped || p == migrate.PhaseDone
				n.checkEnd(t, before, clean)
				wantOutcome := map[string]string{"rerun": migrate.OutcomeMigrated, "rollback": migrate.OutcomeRolledBack}[finish]
				switch {
				case p == migrate.PhaseDone && finish == "rerun":
					wantOutcome = migrate.OutcomeAlreadyMigrated
				case p == migrate.PhaseDone:
					wantOutcome = migrate.OutcomeNothingToRollBack
				}
				if finish == "rollback" && p != migrate.PhaseDone && !strings.Contains(rep.Message, "from phase "+string(p)) {
					t.Errorf("rollback message %q does not name the phase it resumed from (%s)", rep.Message, p)
				}
				if rep.Outcome != wantOutcome {
					t.Errorf("outcome %q, want %q (%s)", rep.Outcome, wantOutcome, rep.Message)
				}
				if finish == "rollback" && p != migrate.PhaseDone {
					// A rollback leaves a finished record; a new migration works.
					if _, err := n.engine(t, migrate.Hooks{}).Migrate(); err != nil {
						t.Fatalf("migrate after rollback: %v", err)
					}
					n.checkEnd(t, before, true)
				}
			})
		}
	}
}

// TestFailAnyOperationThenRerun fails the k-th cgroup operation of a run
// (mkdir, write, move or rmdir) with EIO, then reruns: a crash in the middle
// of a phase, not only at its boundary.
func TestFailAnyOperationThenRerun(t *testing.T) {
	for _, k := range []int{1, 5, 12, 20, 28, 36, 44, 52} {
		t.Run(fmt.Sprint(k), func(t *testing.T) {
			n := newSimNode(t, memcgsim.RHEL78, "qos", true)
			before := n.settings(t)
			var mu sync.Mutex
			count := 0
			n.sim.SetHook(func(op memcgsim.Op) error {
				if op.Kind == memcgsim.OpRead {
					return nil
				}
				mu.Lock()
				defer mu.Unlock()
				count++
				if count == k {
					return syscall.EIO
				}
				return nil
			})
			_, err := n.engine(t, migrate.Hooks{}).Migrate()
			n.sim.SetHook(nil)
			var re *migrate.RunError
			if err == nil {
				t.Fatalf("the failure injected at operation %d never fired (%d operations): the test proves nothing", k, count)
			}
			if !errors.As(err, &re) || !errors.Is(err, syscall.EIO) {
				t.Fatalf("error %v: want a RunError keeping EIO", err)
			}
			if _, err := n.engine(t, migrate.Hooks{}).Migrate(); err != nil {
				t.Fatalf("rerun: %v", err)
			}
			n.checkEnd(t, before, true)
		})
	}
}

// TestForkingDuringMigration: a process that keeps forking while it is
// moved (each cgroup operation forks a child into the forker's current
// cgroup) ends up, with all its children, in the right cgroup.
func TestForkingDuringMigration(t *testing.T) {
	n := newSimNode(t, memcgsim.RHEL78, "qos", true)
	before := n.settings(t)
	const forkerRel = "burstable/podA/ctr1"
	forker, err := n.sim.AddTask(kp(forkerRel), 1<<20)
	n.must(t, err)
	n.pids[forker] = forkerRel
	var mu sync.Mutex
	var children []int
	n.sim.SetHook(func(op memcgsim.Op) error {
		if op.Kind == memcgsim.OpRead || op.Pid >= memcgsim.FirstPid && slices.Contains(children, op.Pid) {
			return nil
		}
		where, err := n.sim.TaskCgroup(forker)
		if err != nil {
			return err
		}
		child, err := n.sim.AddTask(where, 4096)
		if err != nil {
			return err
		}
		mu.Lock()
		children = append(children, child)
		mu.Unlock()
		return nil
	})
	rep, err := n.engine(t, migrate.Hooks{}).Migrate()
	n.sim.SetHook(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(children) < 50 {
		t.Fatalf("only %d forks during the migration", len(children))
	}
	for _, c := range children {
		n.pids[c] = forkerRel
	}
	n.checkEnd(t, before, true)
	t.Logf("%d children forked during the migration; %d moves", len(children), rep.Moved)
}

func TestDryRunWritesNothing(t *testing.T) {
	n := newSimNode(t, memcgsim.RHEL78, "qos", true)
	var writes int
	n.sim.SetHook(func(op memcgsim.Op) error {
		if op.Kind != memcgsim.OpRead {
			writes++
		}
		return nil
	})
	p, err := n.engine(t, migrate.Hooks{}).DryRun()
	n.sim.SetHook(nil)
	if err != nil {
		t.Fatal(err)
	}
	if writes != 0 {
		t.Errorf("dry run made %d cgroup changes", writes)
	}
	if ents, _ := os.ReadDir(n.stateDir); len(ents) != 0 {
		t.Errorf("dry run wrote %d files to the state dir", len(ents))
	}
	procs := 0
	for _, c := range n.tree {
		procs += c.tasks
	}
	if p.Cgroups != len(n.tree) || p.Processes != procs || p.Ops.PidMoves != procs || p.Ops.Mkdir != len(n.tree) || p.Ops.Renames != 2 || p.Ops.ForceEmpty != 0 || p.Ops.KmemLimitWrites != 0 {
		t.Errorf("plan %+v, want %d cgroups, %d processes", p, len(n.tree), procs)
	}
}

// TestBadInput: each bad input gets a clear error and a node that is
// untouched (no journal, tree unchanged) or resumable, and says which.
func TestBadInput(t *testing.T) {
	tests := []struct {
		name      string
		layout    string // default "qos"
		setup     func(t *testing.T, n *fixture)
		hook      func(n *fixture) memcgsim.Hook
		wantErr   error
		want      []string // more substrings of the message
		untouched bool
	}{
		{
			name:      "no kubepods",
			layout:    "none",
			wantErr:   memcg.ErrNoKubepods,
			untouched: true,
		},
		{
			name:      "systemd layout",
			layout:    "none",
			setup:     func(t *testing.T, n *fixture) { n.must(t, n.h.Mkdir("kubepods.slice")) },
			wantErr:   migrate.ErrSystemdLayout,
			untouched: true,
		},
		{
			name:      "unknown layout: both drivers' trees",
			setup:     func(t *testing.T, n *fixture) { n.must(t, n.h.Mkdir("kubepods.slice")) },
			wantErr:   migrate.ErrUnknownLayout,
			untouched: true,
		},
		{
			name: "corrupt journal",
			setup: func(t *testing.T, n *fixture) {
				n.must(t, os.WriteFile(filepath.Join(n.stateDir, migrate.JournalFile), []byte(`{"version":1,"phase":"moved-o`), 0o600))
			},
			wantErr:   migrate.ErrCorruptJournal,
			untouched: true,
		},
		{
			name:      "read-only cgroupfs",
			setup:     func(t *testing.T, n *fixture) { n.sim.ReadOnly(true) },
			wantErr:   syscall.EROFS,
			untouched: true,
		},
		{
			name: "read-only cgroupfs mid-run",
			hook: func(n *fixture) memcgsim.Hook {
				return func(op memcgsim.Op) error {
					if op.Kind == memcgsim.OpRmdir {
						n.sim.ReadOnly(true)
					}
					return nil
				}
			},
			wantErr: syscall.EROFS,
		},
		{
			name: "destination refuses the charge",
			hook: func(n *fixture) memcgsim.Hook {
				var once sync.Once
				return func(op memcgsim.Op) error {
					var err error
					if op.Kind == memcgsim.OpMove && strings.HasPrefix(op.Cgroup, migrate.TempName("kubepods")+"/podG") {
						once.Do(func() { err = syscall.ENOMEM })
					}
					return err
				}
			},
			wantErr: syscall.ENOMEM,
			want:    []string{"cannot take its memory charge", "/kubepods/podG/ctr4 to ", "/nokmem-migrate-kubepods/podG/ctr4"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			layout := tt.layout
			if layout == "" {
				layout = "qos"
			}
			n := newSimNode(t, memcgsim.RHEL78, layout, true)
			before := n.settings(t)
			if tt.setup != nil {
				tt.setup(t, n)
			}
			if tt.hook != nil {
				n.sim.SetHook(tt.hook(n))
			}
			_, err := n.engine(t, migrate.Hooks{}).Migrate()
			n.sim.SetHook(nil)
			n.sim.ReadOnly(false)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			var re *migrate.RunError
			if !errors.As(err, &re) {
				t.Fatalf("error %T is not a RunError", err)
			}
			t.Logf("message: %v", err)
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("message lacks %q", w)
				}
			}
			if tt.untouched {
				if re.Touched || !strings.Contains(err.Error(), "node untouched") {
					t.Errorf("want an untouched node and a message saying so: %v", err)
				}
				if ok, _ := n.h.Exists(migrate.TempName("kubepods")); ok {
					t.Error("temp tree created")
				}
				if tt.wantErr != migrate.ErrCorruptJournal {
					if _, err := os.Stat(filepath.Join(n.stateDir, migrate.JournalFile)); !errors.Is(err, os.ErrNotExist) {
						t.Errorf("journal left behind: %v", err)
					}
				}
				return
			}
			if !re.Touched || !strings.Contains(err.Error(), "node is resumable") {
				t.Fatalf("want a resumable node and a message saying so: %v", err)
			}
			if _, err := n.engine(t, migrate.Hooks{}).Migrate(); err != nil {
				t.Fatalf("rerun: %v", err)
			}
			n.checkEnd(t, before, true)
		})
	}
}

// TestRollbackInterrupted: a rollback that fails half way closes the
// forward path (migrate refuses and says why) and a second rollback
// finishes it.
func TestRollbackInterrupted(t *testing.T) {
	n := newSimNode(t, memcgsim.RHEL78, "qos", true)
	before := n.settings(t)
	if !runUntilKilled(t, n.engine(t, killAt(migrate.PhaseMoved)).Migrate) {
		t.Fatal("hook never fired")
	}
	moves := 0
	n.sim.SetHook(func(op memcgsim.Op) error {
		if op.Kind == memcgsim.OpMove {
			moves++
			if moves == 3 {
				return syscall.EIO
			}
		}
		return nil
	})
	_, err := n.engine(t, migrate.Hooks{}).Rollback()
	n.sim.SetHook(nil)
	if !errors.Is(err, syscall.EIO) || !strings.Contains(err.Error(), "node is resumable") {
		t.Fatalf("interrupted rollback: %v", err)
	}
	if _, err := n.engine(t, migrate.Hooks{}).Migrate(); err == nil || !strings.Contains(err.Error(), "a rollback is in progress") {
		t.Fatalf("migrate during a rollback: %v, want a refusal", err)
	}
	rep, err := n.engine(t, migrate.Hooks{}).Rollback()
	if err != nil {
		t.Fatal(err)
	}
	if rep.Outcome != migrate.OutcomeRolledBack || !strings.Contains(rep.Message, "original") {
		t.Errorf("rollback: %q %s", rep.Outcome, rep.Message)
	}
	n.checkEnd(t, before, false)
	for _, c := range n.tree {
		if ok, _ := n.sim.KmemActive(kp(c.rel)); !ok {
			t.Errorf("%s is not kmem-active after a rollback to the original tree", kp(c.rel))
		}
	}
}

// TestRefusedSetting: a kernel that refuses swappiness on a child of a
// hierarchical parent (upstream 3.10–3.15) keeps the inherited value; the
// run finishes, names the refused files, and the settings check says so.
func TestRefusedSetting(t *testing.T) {
	n := newSimNode(t, memcgsim.RHEL78, "qos", true)
	n.sim.SetHook(func(op memcgsim.Op) error {
		if op.Kind == memcgsim.OpWrite && op.File == memcg.Swappiness {
			return syscall.EINVAL
		}
		return nil
	})
	t.Cleanup(func() { n.sim.SetHook(nil) })
	rep, err := n.engine(t, migrate.Hooks{}).Migrate()
	if err != nil {
		t.Fatal(err)
	}
	checksOK(t, rep)
	want := n.h.Path("kubepods/besteffort", memcg.Swappiness)
	if !slices.Contains(rep.Refused, want) {
		t.Errorf("refused %q, want it to name %s", rep.Refused, want)
	}
	for _, c := range rep.Checks {
		if c.Name == migrate.CheckSettings && !strings.Contains(c.Detail, "refused") {
			t.Errorf("settings check does not mention the refusal: %s", c.Detail)
		}
	}
	if got, err := n.h.ReadString("kubepods/besteffort", memcg.Swappiness); err != nil || got != "60" {
		t.Errorf("besteffort swappiness %q (%v), want the inherited 60", got, err)
	}
}

func checkNames(t *testing.T, rep *migrate.Report, names ...string) {
	t.Helper()
	for _, c := range rep.Checks {
		if !c.OK {
			t.Errorf("invariant %s: %s", c.Name, c.Detail)
		}
	}
	for _, name := range names {
		if !slices.ContainsFunc(rep.Checks, func(c migrate.Check) bool { return c.Name == name }) {
			t.Errorf("invariant %s not checked", name)
		}
	}
}

// checkCharges: nothing is left behind in parents. Every planned process's
// memory is charged to its own cgroup in the fresh tree (it moved with the
// process), so each cgroup's own charge equals its processes' and the
// memory root holds no charge of theirs.
func (n *fixture) checkCharges(t *testing.T) {
	t.Helper()
	per := map[string]int64{}
	for pid, rel := range n.pids {
		if _, err := n.sim.TaskCgroup(pid); err == nil {
			per[rel] += 1 << 20
		}
	}
	for _, c := range n.tree {
		stat, err := n.h.ReadString(kp(c.rel), "memory.stat")
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("rss %d\n", per[c.rel]); !strings.Contains(stat+"\n", want) {
			t.Errorf("%s own charge: memory.stat %q, want %q", kp(c.rel), strings.SplitN(stat, "\n", 3)[:2], strings.TrimSpace(want))
		}
	}
	if stat, err := n.h.ReadString("", "memory.stat"); err != nil || !strings.Contains(stat, "rss 0\n") {
		t.Errorf("memory root own charge: %q (%v), want rss 0: charges left behind", stat, err)
	}
}

// TestForkAfterTheOnlyReadIsCaught: a process forks right before it is
// moved, after the drain read its source, so the child starts in the old
// source cgroup. A full migration reads each source once and leaves that
// child to the cleanup (the kernel refuses to rmdir a cgroup with a task):
// it ends in the same cgroup under the fresh kubepods and is named in
// Swept. The critical part alone (the kubelet starts right after it)
// re-reads every source and moves the child itself.
func TestForkAfterTheOnlyReadIsCaught(t *testing.T) {
	for _, full := range []bool{true, false} {
		t.Run(fmt.Sprintf("full=%v", full), func(t *testing.T) {
			n := newSimNode(t, memcgsim.RHEL78, "qos", true)
			before := n.settings(t)
			const rel = "burstable/podA/ctr1"
			parent, err := n.sim.AddTask(kp(rel), 1<<20)
			n.must(t, err)
			n.pids[parent] = rel
			child := 0
			var mu sync.Mutex
			n.sim.SetHook(func(op memcgsim.Op) error {
				mu.Lock()
				defer mu.Unlock()
				if op.Kind != memcgsim.OpMove || op.Pid != parent || child != 0 {
					return nil
				}
				// the parent is being moved out of kubepods/rel: its
				// source was read already; the child starts there.
				child, err = n.sim.AddTask(kp(rel), 4096)
				return err
			})
			e := n.engine(t, migrate.Hooks{})
			var rep *migrate.Report
			if full {
				rep, err = e.Migrate()
			} else {
				rep, err = e.Critical()
			}
			n.sim.SetHook(nil)
			if err != nil {
				t.Fatal(err)
			}
			if child == 0 {
				t.Fatal("the parent was never moved")
			}
			if got, err := n.sim.TaskCgroup(child); err != nil || got != kp(rel) {
				t.Fatalf("after the critical part (full=%v) the child %d is in %q (%v), want %s", full, child, got, err, kp(rel))
			}
			swept := strings.Join(rep.Swept, "; ")
			if full != strings.Contains(swept, fmt.Sprintf("pid %d ", child)) {
				t.Errorf("full=%v: swept %q, child %d", full, swept, child)
			}
			if !full {
				if rep, err = n.engine(t, migrate.Hooks{}).Cleanup(); err != nil {
					t.Fatal(err)
				}
				if len(rep.Swept) != 0 {
					t.Errorf("cleanup after the critical part swept %q: the critical part should have moved the child", rep.Swept)
				}
			}
			n.pids[child] = rel
			n.checkEnd(t, before, true)
		})
	}
}
