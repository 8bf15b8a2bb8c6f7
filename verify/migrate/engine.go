// Package migrate replaces a kmem-active kubepods memory cgroup tree (cgroup
// v1) with a fresh tree that has the same directories, settings and
// processes but no kernel-memory accounting, without a reboot, and keeps
// the kubelet's downtime to what must happen while it is stopped.
//
// The flow: build the fresh tree under a temporary name directly under the
// memory root (the root is never kmem-active, so its new children are not
// either), move every process into it once, rename the old kubepods aside,
// rename the fresh tree to kubepods. That is the critical part (Engine.Critical):
// only mkdir, setting writes, moves and two renames, so the kubelet can start
// again right after. cgroup v1 allows exactly this rename in place (3.10
// kernel/cgroup.c cgroup_rename, 6.18 kernel/cgroup/cgroup-v1.c
// cgroup1_rename: same parent, new name must not exist). The set-aside old
// tree is removed afterwards (Engine.Cleanup), leaf first, with rmdir only:
// on 3.10 rmdir reparents the page charges by itself
// (mem_cgroup_css_offline → mem_cgroup_reparent_charges), and
// memory.force_empty on a cgroup that holds kernel memory only sleeps
// through its 5 reclaim rounds (5 × congestion_wait(HZ/10) ≈ 0.5 s) without
// reaching 0, so it is never written.
//
// Every phase is recorded in a journal (<state-dir>/migrate-journal.json,
// checksummed, every path checked when read back). A rerun resumes, a
// rollback returns to the original tree, and --abandon sets a journal aside.
//
// The states and their transitions are the table States (states.go):
// "finish" is a rerun of verify migrate, "rollback" is verify migrate
// --rollback; every step is idempotent, so a kill -9 at any point leaves a
// state of that table.
//
// Someone else's changes: a cgroup created in the old tree before it is set
// aside is adopted into the plan on a rerun (created in the fresh tree,
// processes moved; an uninterrupted run leaves it to the cleanup's sweep);
// one created under the fresh kubepods is reported and accepted; a planned
// cgroup that someone removed is recreated with its settings before the
// swap or the rollback, and after the swap reported and accepted;
// processes that exited are counted, a pid reused by a new process (another
// start time under --proc) counts as exited, never as lost; processes found
// in the old tree by the cleanup are moved to the same path under kubepods
// and named. A stuck rollback can always be finished (rerun --rollback) or
// abandoned (--abandon: the journal is set aside, nothing else changes, and
// the message lists what exists on the node). docs/migration-states.md shows
// States with the messages.
package migrate

import (
	"errors"
	"fmt"
	"log/slog"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/nokmem/nokmem/verify/memcg"
)

// Config says where the tree is and how to run.
type Config struct {
	Hierarchy memcg.Hierarchy
	// Kubepods is the tree to migrate, relative to the memory root.
	Kubepods string
	// StateDir holds the journal.
	StateDir string
	Logger   *slog.Logger
	// Proc is the process table for liveness checks and start times
	// ("" means /proc).
	Proc string
	// PidAlive, when set, replaces the process table's liveness check
	// (the simulator's pids are not in /proc).
	PidAlive func(pid int) bool
	// Preflight runs once it is clear that the critical part will change
	// cgroups (not for a no-op, a dry run or a cleanup); an error stops
	// the run before any change.
	Preflight func() error
	Hooks     Hooks
}

// Hooks let tests stop a run at a chosen point, as a kill -9 would.
type Hooks struct {
	// AfterPhase runs once phase p is durably recorded. A non-nil error
	// fails the run there; a hook that panics models kill -9, as nothing of
	// the engine runs after it.
	AfterPhase func(p Phase) error
	// Removed runs after each cgroup of the old tree is removed (progress,
	// and a point to kill the cleanup in tests).
	Removed func(rel string, done, total int)
}

// TempPrefix starts the names of the temporary and set-aside trees.
const TempPrefix = "nokmem-migrate"

// TempName is the fresh tree's temporary name: a sibling of kubepods (a
// cgroup can only be renamed within its parent), so directly under the
// memory root for the kubelet's top-level kubepods.
func TempName(kubepods string) string { return sibling(kubepods, TempPrefix+"-") }

// AsideName is where the old tree is set aside: a sibling of kubepods.
func AsideName(kubepods string) string { return sibling(kubepods, TempPrefix+"-old-") }

func sibling(kubepods, prefix string) string {
	parent, base := path.Split(kubepods)
	return parent + prefix + base
}

// Outcomes of a run.
const (
	OutcomeMigrated          = "migrated"
	OutcomeSwapped           = "swapped"
	OutcomeCleaned           = "cleaned"
	OutcomeAlreadyMigrated   = "already-migrated"
	OutcomeRolledBack        = "rolled-back"
	OutcomeNothingToRollBack = "nothing-to-roll-back"
	OutcomeNothingToClean    = "nothing-to-clean"
	OutcomeAbandoned         = "abandoned"
)

// Report says what a run did.
type Report struct {
	Outcome  string `json:"outcome"`
	Message  string `json:"message"`
	Kubepods string `json:"kubepods"`
	Temp     string `json:"temp"`
	Aside    string `json:"aside"`
	// ResumedFrom is the journal phase a rerun or rollback started from.
	ResumedFrom Phase `json:"resumed_from,omitempty"`
	// Phase is where the journal stands when the run ends.
	Phase     Phase `json:"phase,omitempty"`
	Cgroups   int   `json:"cgroups"`
	Processes int   `json:"processes"`
	// Moved counts pid moves, Exited the processes that were gone (ESRCH).
	Moved  int `json:"moved"`
	Exited int `json:"exited"`
	// MoveCharge is whether charges moved with the tasks (false on ≥6.13).
	MoveCharge bool `json:"move_charge"`
	// SettingWrites counts control-file writes made to copy settings.
	SettingWrites int `json:"setting_writes"`
	// Removed counts old-tree cgroups the cleanup removed.
	Removed int `json:"removed"`
	// Swept names processes the cleanup found in the old tree and moved.
	Swept []string `json:"swept,omitempty"`
	// NewCgroups are cgroups under kubepods that the plan does not have
	// (created in the fresh tree after the swap): accepted, non-kmem.
	NewCgroups []string `json:"new_cgroups,omitempty"`
	// Gone are planned cgroups no longer under kubepods: after the swap
	// (removed by the kubelet), or before it when none of their processes
	// is alive (a container that exited, removed by the runtime): accepted.
	Gone      []string `json:"gone,omitempty"`
	Adopted   []string `json:"adopted,omitempty"`
	Vanished  []string `json:"vanished,omitempty"`
	Regrouped []string `json:"regrouped,omitempty"`
	// Refused lists settings the kernel rejected on a fresh cgroup
	// ("<path>/<file>"); the inherited value was kept there.
	Refused []string `json:"refused,omitempty"`
	Checks  []Check  `json:"checks,omitempty"`
	// Ops counts the cgroupfs operations of this run by kind.
	Ops OpCounts `json:"operations"`
	// Critical is the time of the critical part (kubelet stopped),
	// Cleanup that of the old tree's removal.
	Critical time.Duration `json:"critical_ns"`
	Cleanup  time.Duration `json:"cleanup_ns"`
	Duration time.Duration `json:"duration_ns"`
}

// RunError is a failed run. It says whether the node was left untouched or
// is resumable, what exists on the node, and how to go on.
type RunError struct {
	Err error
	// Phase is the last phase the journal recorded ("" when there is none).
	Phase   Phase
	Touched bool
	Journal string
	// State says what exists on the node now; Next what to run.
	State, Next string
}

func (e *RunError) Error() string {
	var b strings.Builder
	b.WriteString(e.Err.Error())
	if !e.Touched {
		b.WriteString("; node untouched (this run changed no cgroup)")
	} else {
		fmt.Fprintf(&b, "; node is resumable: the journal %s records phase %q", e.Journal, e.Phase)
	}
	if e.State != "" {
		b.WriteString("; on the node: " + e.State)
	}
	if e.Next != "" {
		b.WriteString("; next: " + e.Next)
	}
	return b.String()
}

func (e *RunError) Unwrap() error { return e.Err }

// Engine runs one migration, cleanup, rollback or abandon.
type Engine struct {
	cfg                   Config
	h                     memcg.Hierarchy
	fs                    cgfs
	kubepods, temp, aside string
	j                     *Journal
	mv                    *mover
	rep                   Report
	pt                    procTable
	// deferChecks leaves the invariants of the critical part to the
	// cleanup's final walk (a full migration checks once, at the end), and
	// the drain's re-read of each source to the cleanup's rmdir (moveTree).
	deferChecks bool
}

// New checks cfg and returns an engine.
func New(cfg Config) (*Engine, error) {
	if cfg.Hierarchy.Root == "" || cfg.Kubepods == "" || cfg.StateDir == "" {
		return nil, errors.New("migrate: memory root, kubepods and state dir must be set")
	}
	kp := strings.Trim(cfg.Kubepods, "/")
	if err := cleanRel(kp); err != nil {
		return nil, fmt.Errorf("migrate: kubepods: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Proc == "" {
		cfg.Proc = "/proc"
	}
	e := &Engine{cfg: cfg, h: cfg.Hierarchy, kubepods: kp, temp: TempName(kp), aside: AsideName(kp), pt: procTable{root: cfg.Proc}}
	e.fs = cgfs{h: e.h, n: &e.rep.Ops}
	e.mv = &mover{fs: e.fs, log: cfg.Logger}
	e.rep = Report{Kubepods: e.h.Path(kp), Temp: e.h.Path(e.temp), Aside: e.h.Path(e.aside)}
	return e, nil
}

// alive tells whether the planned process (pid, start) still runs.
func (e *Engine) alive(pid int, start uint64) bool {
	if e.cfg.PidAlive != nil {
		return e.cfg.PidAlive(pid)
	}
	return e.pt.alive(pid, start)
}

// Migrate runs or resumes the whole migration: the critical part, then the
// old tree's removal.
func (e *Engine) Migrate() (*Report, error) {
	start := time.Now()
	e.deferChecks = true // one final walk, at the end of the cleanup
	rep, err := e.Critical()
	if err != nil || rep.Phase != PhaseSwapped {
		return rep, err
	}
	crit := *rep
	rep, err = e.Cleanup()
	if err != nil {
		return nil, err
	}
	rep.Outcome = OutcomeMigrated
	rep.Message = fmt.Sprintf("%s migrated to a fresh tree (%d cgroups, %d processes); the old tree is removed", e.h.Path(e.kubepods), rep.Cgroups, rep.Processes)
	rep.Critical, rep.ResumedFrom = crit.Critical, crit.ResumedFrom
	rep.Checks = append(crit.Checks, rep.Checks...)
	rep.Duration = time.Since(start)
	return rep, nil
}

// Critical runs or resumes the part of the migration that needs the
// kubelet stopped, up to the fresh tree at the kubepods path (phase
// swapped). The old tree is left under the set-aside name for Cleanup.
func (e *Engine) Critical() (*Report, error) {
	start := time.Now()
	j, err := loadJournal(e.cfg.StateDir, e.kubepods)
	if err != nil {
		return nil, &RunError{Err: err}
	}
	if j != nil && j.RollingBack && !j.Phase.Terminal() {
		e.j = j
		return nil, e.runErr(fmt.Errorf("a rollback is in progress (started from phase %s)", j.Phase))
	}
	if j != nil && j.Phase == PhaseSwapped {
		e.j = j
		e.rep.Outcome, e.rep.Phase, e.rep.ResumedFrom = OutcomeSwapped, j.Phase, j.Phase
		e.rep.Cgroups, e.rep.Processes = j.Snapshot.Counts()
		e.rep.Message = fmt.Sprintf("the fresh tree is already at %s (journal phase swapped); only the old tree's removal is left", e.h.Path(e.kubepods))
		return &e.rep, nil
	}
	fresh := j == nil || j.Phase.Terminal()
	if fresh {
		if rep, done := e.alreadyMigrated(j); done {
			return rep, nil
		}
	} else if rep, err := e.checkResume(j); rep != nil || err != nil {
		return rep, err
	}
	if err := e.preflight(); err != nil {
		if fresh {
			return nil, &RunError{Err: err}
		}
		e.j = j
		return nil, e.runErr(err)
	}
	if fresh {
		if err := e.leftovers(); err != nil {
			return nil, &RunError{Err: err, State: e.describe()}
		}
		if err := e.plan(); err != nil {
			return nil, e.fail(err, true)
		}
	} else {
		e.j = j
		e.rep.ResumedFrom = j.Phase
		e.cfg.Logger.Info("resuming migration", "journal", journalPath(e.cfg.StateDir), "phase", j.Phase)
	}
	if err := e.forward(); err != nil {
		return nil, e.fail(err, fresh)
	}
	e.rep.Outcome = OutcomeSwapped
	e.rep.Phase = e.j.Phase
	e.rep.Message = fmt.Sprintf("the fresh tree is at %s (%d cgroups, %d processes); the kubelet may start; the old tree waits at %s for the cleanup",
		e.h.Path(e.kubepods), e.rep.Cgroups, e.rep.Processes, e.h.Path(e.aside))
	e.rep.Critical = time.Since(start)
	e.rep.Duration = e.rep.Critical
	return &e.rep, nil
}

// alreadyMigrated answers a fresh run on a node that needs nothing.
func (e *Engine) alreadyMigrated(j *Journal) (*Report, bool) {
	if j != nil && j.Phase == PhaseDone {
		if ino, err := inode(e.h, e.kubepods); err == nil && ino == j.FreshInode {
			e.rep.Outcome, e.rep.Phase = OutcomeAlreadyMigrated, j.Phase
			e.rep.Message = fmt.Sprintf("%s was already migrated on %s (journal %s, same directory inode %d); nothing to do",
				e.h.Path(e.kubepods), j.Updated.Format(time.RFC3339), journalPath(e.cfg.StateDir), ino)
			e.rep.Cgroups, e.rep.Processes = j.Snapshot.Counts()
			return &e.rep, true
		}
	}
	n, clean, err := kmemInactive(e.fs, e.kubepods)
	if err != nil || !clean {
		return nil, false
	}
	e.rep.Outcome = OutcomeAlreadyMigrated
	e.rep.Message = fmt.Sprintf("kmem accounting is off in all %d cgroups of %s (memory.kmem.slabinfo reads EIO): already migrated, nothing to do",
		n, e.h.Path(e.kubepods))
	e.rep.Cgroups = n
	return &e.rep, true
}

func (e *Engine) preflight() error {
	if e.cfg.Preflight == nil {
		return nil
	}
	return e.cfg.Preflight()
}

// plan snapshots the tree and records it; nothing in cgroupfs changes.
func (e *Engine) plan() error {
	if err := CheckLayout(e.h, e.kubepods); err != nil {
		return err
	}
	if parent := path.Dir(e.kubepods); parent != "." {
		// The fresh tree inherits kmem accounting from its parent.
		if st, err := e.fs.SlabinfoState(parent); err != nil {
			return err
		} else if st == memcg.SlabinfoHeader {
			return fmt.Errorf("%s is kmem-active: a fresh tree built beside kubepods under it would be kmem-active too", e.h.Path(parent))
		}
	}
	snap, err := takeSnapshot(e.fs, e.kubepods, e.pt)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	e.j = &Journal{Version: journalVersion, Kubepods: e.kubepods, Temp: e.temp, Aside: e.aside, Phase: PhasePlanned, Started: now, Snapshot: snap}
	if err := saveJournal(e.cfg.StateDir, e.j); err != nil {
		return err
	}
	return e.afterPhase(PhasePlanned)
}

// fail turns err into a RunError that tells whether the node was touched
// and what exists. A run that created the journal and changed no cgroup
// removes the journal.
func (e *Engine) fail(err error, fresh bool) error {
	if e.j == nil {
		return &RunError{Err: err, State: e.describe()}
	}
	var rerr error
	if rel, ok := e.vanishedRel(err); ok && !slices.Contains(e.j.Vanished, rel) && e.j.Snapshot.index(rel) >= 0 {
		e.j.Vanished = append(e.j.Vanished, rel)
		rerr = saveJournal(e.cfg.StateDir, e.j)
	}
	re := e.runErr(err)
	tempExists, xerr := exists(e.h, e.temp)
	re.Touched = e.j.RollingBack || e.j.Phase != PhasePlanned || tempExists || xerr != nil
	if !re.Touched && fresh {
		rerr = errors.Join(rerr, removeJournal(e.cfg.StateDir))
		re.Next = ""
	}
	if rerr != nil {
		re.Err = errors.Join(err, fmt.Errorf("also failed to update the journal: %w", rerr))
	}
	return re
}

// runErr describes a stop with an unfinished journal.
func (e *Engine) runErr(err error) *RunError {
	return &RunError{Err: err, Phase: e.j.Phase, Touched: true, Journal: journalPath(e.cfg.StateDir), State: e.describe(), Next: e.next()}
}

// next says what to run for the journal's state.
func (e *Engine) next() string {
	switch {
	case e.j == nil || e.j.Phase.Terminal():
		return ""
	case e.j.RollingBack:
		return "run `verify migrate --rollback` to finish the rollback, or `verify migrate --abandon` to set the journal aside and leave the node as it is"
	case e.j.Phase == PhaseSwapped:
		return "rerun `verify migrate` to remove the old tree (the kubelet may run meanwhile)"
	}
	return "rerun `verify migrate` to finish (keep the kubelet stopped), or `verify migrate --rollback` to put every process back into the original (kmem-active) tree"
}

// vanishedRel returns the kubepods-relative path of the cgroup a
// VanishedError names.
func (e *Engine) vanishedRel(err error) (string, bool) {
	var ve *VanishedError
	if !errors.As(err, &ve) {
		return "", false
	}
	for _, prefix := range []string{e.kubepods, e.temp, e.aside} {
		if ve.Rel == prefix {
			return "", true
		}
		if rel, ok := strings.CutPrefix(ve.Rel, prefix+"/"); ok {
			return rel, true
		}
	}
	return "", false
}

// record makes phase p durable and runs the test hook.
//
// The phases inside the critical part (built, moved, set-aside, swapped)
// are written without fsync: each fsync costs milliseconds of kubelet
// downtime (4 ms on the benchmark machine's disk), and they only guard
// against a crash of the machine, which also loses every cgroup and
// process these phases describe (cgroupfs lives in memory), so after it
// the journal is stale whatever phase it kept. A killed run (kill -9) still
// finds the old or the new journal (write to a temporary file, rename), as
// the kill tests show. The plan (the record that a migration started on
// this node) and the end phases are written durably.
func (e *Engine) record(p Phase) error {
	e.j.Phase = p
	sync := e.j.RollingBack || !slices.Contains([]Phase{PhaseBuilt, PhaseMoved, PhaseSetAside, PhaseSwapped}, p)
	if err := writeJournal(e.cfg.StateDir, e.j, sync); err != nil {
		return err
	}
	e.rep.Phase = p
	e.cfg.Logger.Info("phase done", "phase", p)
	return e.afterPhase(p)
}

func (e *Engine) afterPhase(p Phase) error {
	if e.cfg.Hooks.AfterPhase == nil {
		return nil
	}
	return e.cfg.Hooks.AfterPhase(p)
}

// forward runs the phases of the critical part after the journal's one.
func (e *Engine) forward() error {
	steps := []struct {
		done Phase
		what string
		run  func() error
	}{
		{PhaseBuilt, "build the fresh tree", e.build},
		{PhaseMoved, "move processes into the fresh tree", e.moveIn},
		{PhaseSetAside, "set the old tree aside", e.setAside},
		{PhaseSwapped, "put the fresh tree at kubepods", e.swap},
	}
	e.rep.Cgroups, e.rep.Processes = e.j.Snapshot.Counts()
	for _, s := range steps {
		if e.j.Phase.reached(s.done) {
			continue
		}
		if err := s.run(); err != nil {
			return fmt.Errorf("%s: %w", s.what, err)
		}
		if err := e.record(s.done); err != nil {
			return err
		}
	}
	return nil
}
