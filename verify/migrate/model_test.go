package migrate_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/nokmem/nokmem/internal/memcgsim"
	"github.com/nokmem/nokmem/verify/memcg"
	"github.com/nokmem/nokmem/verify/migrate"
)

// stateRollingBack is the state of a rollback that was interrupted.
const stateRollingBack = "rolling-back"

// reach brings n to state: a migration killed right after the phase was
// recorded, a finished migration (done), or an interrupted rollback.
func (n *fixture) reach(t *testing.T, state string) {
	t.Helper()
	switch state {
	case string(migrate.PhaseDone):
		if _, err := n.engine(t, migrate.Hooks{}).Migrate(); err != nil {
			t.Fatal(err)
		}
	case stateRollingBack:
		n.reach(t, string(migrate.PhaseMoved))
		moves := 0
		n.sim.SetHook(func(op memcgsim.Op) error {
			if op.Kind == memcgsim.OpMove {
				if moves++; moves == 3 {
					return syscall.EIO
				}
			}
			return nil
		})
		_, err := n.engine(t, migrate.Hooks{}).Rollback()
		n.sim.SetHook(nil)
		if !errors.Is(err, syscall.EIO) {
			t.Fatalf("interrupting the rollback: %v", err)
		}
	default:
		if !runUntilKilled(t, n.engine(t, killAt(migrate.Phase(state))).Migrate) {
			t.Fatalf("the kill at %s never fired", state)
		}
	}
}

// oldTreeAt returns where the tree that someone else would change sits:
// kubepods, or the set-aside path while kubepods is absent.
func (n *fixture) treeAt(t *testing.T) string {
	t.Helper()
	if ok, err := n.h.Exists("kubepods"); err != nil || ok {
		return "kubepods"
	}
	return migrate.AsideName("kubepods")
}

// phaseOnDisk reads the journal's phase ("" without a journal).
func (n *fixture) phaseOnDisk(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(n.stateDir, migrate.JournalFile))
	if errors.Is(err, os.ErrNotExist) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	var j struct{ Phase string }
	if err := json.Unmarshal(b, &j); err != nil {
		t.Fatal(err)
	}
	return j.Phase
}

// TestStateMachineModel walks every state × {intruder cgroup, vanished
// cgroup, process exit, process fork, kill -9} × {rerun, rollback} on the
// simulator. Each run either ends in a terminal state or stops with a
// message naming the cause and a next step, which the test follows; in the
// end the journal is terminal, no process is lost (every live process is at
// its planned path under kubepods, an intruder's and a fork's included),
// no setting is lost, and no temporary or set-aside tree is left.
func TestStateMachineModel(t *testing.T) {
	states := []string{stateRollingBack}
	for _, p := range migrate.Phases() {
		states = append(states, string(p))
	}
	for _, state := range states {
		for _, pert := range []string{"intruder", "vanished", "exit", "fork", "kill9"} {
			for _, way := range []string{"rerun", "rollback"} {
				t.Run(state+"/"+pert+"/"+way, func(t *testing.T) {
					modelCase(t, state, pert, way)
				})
			}
		}
	}
}

func modelCase(t *testing.T, state, pert, way string) {
	n := newSimNode(t, memcgsim.RHEL78, "qos", true)
	before := n.settings(t)
	n.reach(t, state)
	want := map[int]string{} // live pid → planned rel under kubepods
	for pid, rel := range n.pids {
		want[pid] = rel
	}
	var vanished string
	var pids []int
	for p := range n.pids {
		pids = append(pids, p)
	}
	slices.Sort(pids)
	switch pert {
	case "intruder":
		at := n.treeAt(t)
		n.must(t, n.sim.Mkdir(at+"/burstable/podNEW"))
		pid, err := n.sim.AddTask(at+"/burstable/podNEW", 1<<20)
		n.must(t, err)
		want[pid] = "burstable/podNEW"
	case "vanished":
		vanished = "besteffort/podE/empty"
		n.must(t, n.sim.Rmdir(n.treeAt(t)+"/"+vanished))
	case "exit":
		n.must(t, n.sim.Exit(pids[0]))
		delete(want, pids[0])
	case "fork":
		where, err := n.sim.TaskCgroup(pids[1])
		n.must(t, err)
		child, err := n.sim.AddTask(where, 4096)
		n.must(t, err)
		want[child] = n.pids[pids[1]]
	}
	killed := pert != "kill9"
	hooks := func() migrate.Hooks {
		if killed {
			return migrate.Hooks{}
		}
		killed = true
		return migrate.Hooks{
			AfterPhase: func(migrate.Phase) error { panic(killed2{}) },
			Removed: func(_ string, done, _ int) {
				if done == 3 {
					panic(killed2{})
				}
			},
		}
	}
	var rep *migrate.Report
	for attempt := 0; ; attempt++ {
		if attempt == 5 {
			t.Fatalf("no terminal state after 5 runs (journal phase %q)", n.phaseOnDisk(t))
		}
		var err error
		died := func() (died bool) {
			defer func() {
				if r := recover(); r != nil {
					if _, ok := r.(killed2); !ok {
						panic(r)
					}
					died = true
				}
			}()
			e := n.engine(t, hooks())
			if way == "rollback" {
				rep, err = e.Rollback()
			} else {
				rep, err = e.Migrate()
			}
			return false
		}()
		if died {
			continue
		}
		if err == nil {
			break
		}
		var re *migrate.RunError
		if !errors.As(err, &re) || re.Next == "" {
			t.Fatalf("stopped without saying what to run: %v", err)
		}
		t.Logf("stopped: %v", err)
		switch {
		case strings.Contains(re.Next, "`verify migrate --rollback` to finish the rollback"):
			way = "rollback"
		case strings.HasPrefix(re.Next, "run `verify migrate`"), strings.HasPrefix(re.Next, "rerun `verify migrate`"):
			way = "rerun"
		default:
			t.Fatalf("next step %q is not one this test knows to follow", re.Next)
		}
	}
	if ph := n.phaseOnDisk(t); ph != string(migrate.PhaseDone) && ph != string(migrate.PhaseRolledBack) {
		t.Errorf("journal phase %q at the end (outcome %s: %s), want a terminal one", ph, rep.Outcome, rep.Message)
	}
	for pid, rel := range want {
		got, err := n.sim.TaskCgroup(pid)
		if err != nil {
			t.Errorf("pid %d (planned at %s) lost: %v", pid, rel, err)
		} else if got != kp(rel) {
			t.Errorf("pid %d in %s, want %s", pid, got, kp(rel))
		}
	}
	got := n.settings2(t)
	for rel, s := range before {
		if rel == vanished && got[rel] == "" {
			continue
		}
		if got[rel] != s {
			t.Errorf("%s settings %q, want %q", kp(rel), got[rel], s)
		}
	}
	for _, left := range []string{migrate.TempName("kubepods"), migrate.AsideName("kubepods")} {
		if ok, err := n.h.Exists(left); err != nil || ok {
			t.Errorf("%s left (%v)", left, err)
		}
	}
}

type killed2 struct{}

// settings2 is settings that skips missing cgroups (an empty value).
func (n *fixture) settings2(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, c := range n.tree {
		if ok, _ := n.h.Exists(kp(c.rel)); !ok {
			continue
		}
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

// TestReproConcurrentMigrationsRerunAfterOtherFinished: run B (its own
// state dir) is killed after planning; run A migrates the node; a rerun of
// B finds kubepods migrated by someone else and touches no cgroup (it used
// to remove cgroups of the live, migrated tree).
func TestReproConcurrentMigrationsRerunAfterOtherFinished(t *testing.T) {
	n := newSimNode(t, memcgsim.RHEL78, "qos", true)
	before := n.settings(t)
	stateA, stateB := n.stateDir, t.TempDir()
	n.stateDir = stateB
	if !runUntilKilled(t, n.engine(t, killAt(migrate.PhasePlanned)).Migrate) {
		t.Fatal("kill never fired")
	}
	n.stateDir = stateA
	if _, err := n.engine(t, migrate.Hooks{}).Migrate(); err != nil {
		t.Fatal(err)
	}
	costs := n.sim.Costs()
	all, err := n.h.Walk("kubepods")
	if err != nil {
		t.Fatal(err)
	}
	n.stateDir = stateB
	rep, err := n.engine(t, migrate.Hooks{}).Migrate()
	if err != nil {
		t.Fatalf("rerun of B: %v", err)
	}
	if rep.Outcome != migrate.OutcomeAlreadyMigrated || !strings.Contains(rep.Message, "another run") || !strings.Contains(rep.Message, "set aside") {
		t.Errorf("rerun of B: %s %s, want already-migrated by another run, journal set aside", rep.Outcome, rep.Message)
	}
	if c := n.sim.Costs().Sub(costs); c.Mkdir+c.Rmdir+c.Rename+c.Move+c.Write != 0 {
		t.Errorf("rerun of B changed cgroups: %v", c)
	}
	if after, _ := n.h.Walk("kubepods"); len(after) != len(all) {
		t.Errorf("kubepods went from %d to %d cgroups", len(all), len(after))
	}
	if ph := n.phaseOnDisk(t); ph != "" {
		t.Errorf("B's stale journal still in place (phase %s)", ph)
	}
	n.stateDir = stateA
	n.checkEnd(t, before, true)
}

// TestReproConcurrentMigrationsTempHeldByOther: run B is killed with every
// process in its temporary tree; run A (another state dir) refuses, naming
// the processes and where to look, before changing anything; B's rerun
// finishes.
func TestReproConcurrentMigrationsTempHeldByOther(t *testing.T) {
	n := newSimNode(t, memcgsim.RHEL78, "qos", true)
	before := n.settings(t)
	stateA, stateB := n.stateDir, t.TempDir()
	n.stateDir = stateB
	if !runUntilKilled(t, n.engine(t, killAt(migrate.PhaseMoved)).Migrate) {
		t.Fatal("kill never fired")
	}
	n.stateDir = stateA
	costs := n.sim.Costs()
	_, err := n.engine(t, migrate.Hooks{}).Migrate()
	if err == nil || !strings.Contains(err.Error(), "8 processes") || !strings.Contains(err.Error(), "--state-dir") || !strings.Contains(err.Error(), "node untouched") {
		t.Fatalf("A: %v, want a refusal naming B's processes and the state dir", err)
	}
	if c := n.sim.Costs().Sub(costs); c.Mkdir+c.Rmdir+c.Rename+c.Move+c.Write != 0 {
		t.Errorf("A changed cgroups: %v", c)
	}
	n.stateDir = stateB
	if _, err := n.engine(t, migrate.Hooks{}).Migrate(); err != nil {
		t.Fatal(err)
	}
	n.checkEnd(t, before, true)
}

// TestReproPodCreatedAfterOldTreeRemoval: a pod cgroup appears under the
// fresh kubepods after the swap (the kubelet is back): it is reported and
// accepted, the run finishes, a rerun says already migrated and a rollback
// says there is nothing to roll back (all used to fail an invariant for good).
func TestReproPodCreatedAfterOldTreeRemoval(t *testing.T) {
	n := newSimNode(t, memcgsim.RHEL78, "qos", true)
	var once sync.Once
	var pod int
	rep, err := n.engine(t, migrate.Hooks{Removed: func(string, int, int) {
		once.Do(func() {
			n.must(t, n.sim.Mkdir("kubepods/burstable/podNEW"))
			var err error
			pod, err = n.sim.AddTask("kubepods/burstable/podNEW", 1<<20)
			n.must(t, err)
		})
	}}).Migrate()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(rep.NewCgroups, func(s string) bool { return strings.HasSuffix(s, "/kubepods/burstable/podNEW") }) {
		t.Errorf("new cgroups %q do not name podNEW", rep.NewCgroups)
	}
	checksOK(t, rep)
	if got, _ := n.sim.TaskCgroup(pod); got != "kubepods/burstable/podNEW" {
		t.Errorf("the new pod's process is in %q", got)
	}
	again, err := n.engine(t, migrate.Hooks{}).Migrate()
	if err != nil || again.Outcome != migrate.OutcomeAlreadyMigrated {
		t.Errorf("rerun: %v %v", again, err)
	}
	rb, err := n.engine(t, migrate.Hooks{}).Rollback()
	if err != nil || rb.Outcome != migrate.OutcomeNothingToRollBack {
		t.Errorf("rollback: %v %v", rb, err)
	}
}

// TestReproPodCreatedDuringOldTreeRemoval: a pod cgroup with a process
// appears in the old tree while it is being removed. The cleanup moves the
// process to the same path under kubepods and names it; when something
// keeps putting processes there, the error names the pod cgroup and the
// processes (it used to be a bare "force_empty: device or resource busy"),
// and a rerun after that stops finishes.
func TestReproPodCreatedDuringOldTreeRemoval(t *testing.T) {
	aside := migrate.AsideName("kubepods")
	podNew := aside + "/burstable/podNEW"
	t.Run("swept", func(t *testing.T) {
		n := newSimNode(t, memcgsim.RHEL78, "qos", true)
		var once sync.Once
		var pod int
		rep, err := n.engine(t, migrate.Hooks{Removed: func(string, int, int) {
			once.Do(func() {
				n.must(t, n.sim.Mkdir(podNew))
				var err error
				pod, err = n.sim.AddTask(podNew, 1<<20)
				n.must(t, err)
			})
		}}).Migrate()
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := n.sim.TaskCgroup(pod); got != "kubepods/burstable/podNEW" {
			t.Errorf("the pod's process is in %q, want kubepods/burstable/podNEW", got)
		}
		if !slices.ContainsFunc(rep.Swept, func(s string) bool {
			return strings.Contains(s, fmt.Sprintf("pid %d from ", pod)) && strings.Contains(s, "podNEW")
		}) {
			t.Errorf("swept %q does not name pid %d and podNEW", rep.Swept, pod)
		}
	})
	t.Run("busy", func(t *testing.T) {
		n := newSimNode(t, memcgsim.RHEL78, "qos", true)
		before := n.settings(t)
		if _, err := n.engine(t, migrate.Hooks{}).Critical(); err != nil {
			t.Fatal(err)
		}
		n.must(t, n.sim.Mkdir(podNew))
		n.sim.SetHook(func(op memcgsim.Op) error {
			if op.Kind == memcgsim.OpRmdir && op.Cgroup == podNew {
				if _, err := n.sim.AddTask(podNew, 4096); err != nil {
					return err
				}
			}
			return nil
		})
		_, err := n.engine(t, migrate.Hooks{}).Cleanup()
		n.sim.SetHook(nil)
		if err == nil || !strings.Contains(err.Error(), "/burstable/podNEW") || !strings.Contains(err.Error(), "processes [") || !strings.Contains(err.Error(), "next: rerun `verify migrate`") {
			t.Fatalf("cleanup with a pod that keeps filling: %v, want an error naming the pod, its processes and what to run", err)
		}
		t.Logf("message: %v", err)
		rep, err := n.engine(t, migrate.Hooks{}).Migrate()
		if err != nil {
			t.Fatal(err)
		}
		if rep.Phase != migrate.PhaseDone {
			t.Errorf("phase %s after the rerun", rep.Phase)
		}
		// The processes put into podNEW were moved to the same path under
		// kubepods (created for them); everything else is as planned.
		n.tree = append(n.tree, cg{rel: "burstable/podNEW"})
		before["burstable/podNEW"] = n.settings(t)["burstable/podNEW"]
		n.checkEnd(t, before, true)
	})
}

// TestReproJournalRelEscapes: a journal whose node says rel "../victim"
// (it used to make the migration remove and recreate a cgroup outside
// kubepods, losing its soft limit) is refused, naming the file, and the
// victim keeps everything.
func TestReproJournalRelEscapes(t *testing.T) {
	n := newSimNode(t, memcgsim.RHEL78, "qos", true)
	n.must(t, n.h.Mkdir("victim"))
	n.must(t, n.h.Write("victim", memcg.SoftLimit, "1048576"))
	if !runUntilKilled(t, n.engine(t, killAt(migrate.PhasePlanned)).Migrate) {
		t.Fatal("kill never fired")
	}
	p := filepath.Join(n.stateDir, migrate.JournalFile)
	b, err := os.ReadFile(p)
	n.must(t, err)
	bad := strings.Replace(string(b), `"rel": "besteffort"`, `"rel": "../victim"`, 1)
	if bad == string(b) {
		t.Fatal("test setup: no besteffort node in the journal")
	}
	n.must(t, os.WriteFile(p, []byte(bad), 0o600))
	costs := n.sim.Costs()
	for _, run := range []func(*migrate.Engine) (*migrate.Report, error){(*migrate.Engine).Migrate, (*migrate.Engine).Rollback, (*migrate.Engine).Cleanup} {
		_, err := run(n.engine(t, migrate.Hooks{}))
		if !errors.Is(err, migrate.ErrCorruptJournal) || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "--abandon") {
			t.Errorf("with a ../victim journal: %v, want a refusal naming %s and the way out", err, p)
		}
	}
	if c := n.sim.Costs().Sub(costs); c.Mkdir+c.Rmdir+c.Rename+c.Move+c.Write != 0 {
		t.Errorf("an untrusted journal led to changes: %v", c)
	}
	if v, err := n.h.ReadString("victim", memcg.SoftLimit); err != nil || v != "1048576" {
		t.Errorf("victim soft limit %q (%v)", v, err)
	}
}

// TestReproKillInPlannedTellsTruth: after a kill -9 in phase planned, with
// a partly built temporary tree, the message says what exists (the journal,
// the old tree, the temporary tree and its size) and what to run, and
// following it works; --abandon sets the journal aside, and the next run
// removes the empty leftover and migrates.
func TestReproKillInPlannedTellsTruth(t *testing.T) {
	for _, follow := range []string{"rerun", "abandon"} {
		t.Run(follow, func(t *testing.T) {
			n := newSimNode(t, memcgsim.RHEL78, "qos", true)
			before := n.settings(t)
			mkdirs := 0
			n.sim.SetHook(func(op memcgsim.Op) error {
				if op.Kind == memcgsim.OpMkdir {
					if mkdirs++; mkdirs == 5 {
						return syscall.EIO
					}
				}
				return nil
			})
			_, err := n.engine(t, migrate.Hooks{}).Migrate()
			n.sim.SetHook(nil)
			for _, w := range []string{`records phase "planned"`, "kubepods is the old (kmem-active) tree", "nokmem-migrate-kubepods is the fresh tree (4 cgroups, 0 processes)", "nokmem-migrate-old-kubepods absent", "next: rerun `verify migrate`"} {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("message lacks %q: %v", w, err)
				}
			}
			if follow == "abandon" {
				rep, err := n.engine(t, migrate.Hooks{}).Abandon()
				if err != nil || rep.Outcome != migrate.OutcomeAbandoned || !strings.Contains(rep.Message, "nokmem-migrate-kubepods is") {
					t.Fatalf("abandon: %v %v", rep, err)
				}
			}
			if _, err := n.engine(t, migrate.Hooks{}).Migrate(); err != nil {
				t.Fatal(err)
			}
			n.checkEnd(t, before, true)
		})
	}
}

// TestReproRollbackReportsPhaseResumedFrom: a rollback says the phase it
// resumed from (it used to say "rolled-back"), and that the processes are
// back in a kmem-active tree.
func TestReproRollbackReportsPhaseResumedFrom(t *testing.T) {
	n := newSimNode(t, memcgsim.RHEL78, "qos", true)
	if !runUntilKilled(t, n.engine(t, killAt(migrate.PhaseMoved)).Migrate) {
		t.Fatal("kill never fired")
	}
	rep, err := n.engine(t, migrate.Hooks{}).Rollback()
	if err != nil {
		t.Fatal(err)
	}
	if rep.ResumedFrom != migrate.PhaseMoved || !strings.Contains(rep.Message, "from phase moved") || !strings.Contains(rep.Message, "kmem-active") {
		t.Errorf("rollback: resumed from %q, message %q", rep.ResumedFrom, rep.Message)
	}
}

// TestCleanupKilledThenRerun: a kill -9 during the old tree's removal (the
// kubelet already back), then a rerun, finishes it; the critical part is
// not redone.
func TestCleanupKilledThenRerun(t *testing.T) {
	n := newSimNode(t, memcgsim.RHEL78, "qos", true)
	before := n.settings(t)
	died := runUntilKilled(t, n.engine(t, migrate.Hooks{Removed: func(_ string, done, _ int) {
		if done == 5 {
			panic(killed{})
		}
	}}).Migrate)
	if !died {
		t.Fatal("kill never fired")
	}
	if ph := n.phaseOnDisk(t); ph != string(migrate.PhaseSwapped) {
		t.Fatalf("journal phase %q after a kill in the cleanup", ph)
	}
	costs := n.sim.Costs()
	rep, err := n.engine(t, migrate.Hooks{}).Migrate()
	if err != nil {
		t.Fatal(err)
	}
	if c := n.sim.Costs().Sub(costs); c.Mkdir+c.Move+c.Rename != 0 || rep.ResumedFrom != migrate.PhaseSwapped {
		t.Errorf("rerun redid critical work: %v (resumed from %s)", c, rep.ResumedFrom)
	}
	n.checkEnd(t, before, true)
}

// TestVanishedCgroupKept: a planned cgroup removed from the old tree while
// the run moves processes is kept in the fresh tree and reported.
func TestVanishedCgroupKept(t *testing.T) {
	n := newSimNode(t, memcgsim.RHEL78, "qos", true)
	before := n.settings(t)
	var once sync.Once
	n.sim.SetHook(func(op memcgsim.Op) error {
		if op.Kind == memcgsim.OpMove {
			once.Do(func() { n.must(t, n.sim.Rmdir(kp("besteffort/podE/empty"))) })
		}
		return nil
	})
	rep, err := n.engine(t, migrate.Hooks{}).Migrate()
	n.sim.SetHook(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(rep.Vanished, "besteffort/podE/empty") {
		t.Errorf("vanished %q", rep.Vanished)
	}
	n.checkEnd(t, before, true)
}

// TestPidReuseIsNotLost: a planned process exits during the run and its
// pid is taken by a new process (another start time in the --proc table):
// it counts as exited, not as a lost process.
func TestPidReuseIsNotLost(t *testing.T) {
	n := newSimNode(t, memcgsim.RHEL78, "qos", true)
	proc := t.TempDir()
	stat := func(pid int, start int) {
		dir := filepath.Join(proc, fmt.Sprint(pid))
		n.must(t, os.MkdirAll(dir, 0o755))
		line := fmt.Sprintf("%d (sleep) S 1%s %d 0 0\n", pid, strings.Repeat(" 0", 17), start)
		n.must(t, os.WriteFile(filepath.Join(dir, "stat"), []byte(line), 0o644))
	}
	var victim int
	for pid := range n.pids {
		stat(pid, 100)
		victim = max(victim, pid)
	}
	var once sync.Once
	n.sim.SetHook(func(op memcgsim.Op) error {
		if op.Kind == memcgsim.OpMove {
			once.Do(func() {
				n.must(t, n.sim.Exit(victim))
				stat(victim, 999) // a new process got the pid
			})
		}
		return nil
	})
	cfg := n.config(migrate.Hooks{})
	cfg.PidAlive, cfg.Proc = nil, proc
	e, err := migrate.New(cfg)
	n.must(t, err)
	rep, err := e.Migrate()
	n.sim.SetHook(nil)
	if err != nil {
		t.Fatalf("pid reuse reported as a failure: %v", err)
	}
	checksOK(t, rep)
	for _, c := range rep.Checks {
		if c.Name == migrate.CheckPids && !strings.Contains(c.Detail, "1 exited") {
			t.Errorf("pids check %q, want the reused pid counted as exited", c.Detail)
		}
	}
}

// TestAbandonStuckRollback: a rollback that cannot finish can be abandoned
// with the documented command: the journal is set aside, no cgroup
// changes, and the message lists what is where, processes included.
func TestAbandonStuckRollback(t *testing.T) {
	n := newSimNode(t, memcgsim.RHEL78, "qos", true)
	n.reach(t, stateRollingBack)
	costs := n.sim.Costs()
	rep, err := n.engine(t, migrate.Hooks{}).Abandon()
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"phase moved", "migrate-journal.abandoned-", "no cgroup was changed", "nokmem-migrate-kubepods is the fresh tree (12 cgroups, "} {
		if !strings.Contains(rep.Message, w) {
			t.Errorf("abandon message lacks %q: %s", w, rep.Message)
		}
	}
	if c := n.sim.Costs().Sub(costs); c.Mkdir+c.Rmdir+c.Rename+c.Move+c.Write != 0 {
		t.Errorf("abandon changed cgroups: %v", c)
	}
	if ph := n.phaseOnDisk(t); ph != "" {
		t.Errorf("journal still in place (phase %s)", ph)
	}
}
