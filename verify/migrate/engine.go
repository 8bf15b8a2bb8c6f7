// Package migrate replaces a kmem-active kubepods memory cgroup tree (cgroup
// v1) with a fresh tree that has the same directories, settings and
// processes but no kernel-memory accounting, without a reboot.
//
// The recipe (kernel-semantics.md §3d, §4a): mirror kubepods into a
// temporary sibling tree directly under the memory root (the root is never
// kmem-active, so its new children are not either), move every process
// there, remove the old tree leaf first, create kubepods anew, mirror back,
// remove the temporary tree. Every phase is recorded in a journal in the
// state directory; a rerun after a crash finishes the job and a rollback
// returns every process to the original layout.
package migrate

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
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
	// PidAlive tells whether a process still exists, to tell an exited
	// process from a lost one; nil checks /proc/<pid>.
	PidAlive func(pid int) bool
	// Preflight runs once it is clear that cgroups will change (not for a
	// no-op or a dry run); an error stops the run before any change.
	Preflight func() error
	Hooks     Hooks
}

// Hooks let tests stop a run at a chosen point, as a kill -9 would.
type Hooks struct {
	// AfterPhase runs once phase p is durably recorded. A non-nil error
	// fails the run there; a hook that panics models kill -9, as nothing of
	// the engine runs after it.
	AfterPhase func(p Phase) error
}

// TempName is the temporary sibling of kubepods, directly under the root.
func TempName(kubepods string) string {
	return "nokmem-migrate-" + strings.ReplaceAll(kubepods, "/", "-")
}

// Outcomes of a run.
const (
	OutcomeMigrated          = "migrated"
	OutcomeAlreadyMigrated   = "already-migrated"
	OutcomeRolledBack        = "rolled-back"
	OutcomeNothingToRollBack = "nothing-to-roll-back"
)

// Report says what a run did.
type Report struct {
	Outcome  string `json:"outcome"`
	Message  string `json:"message"`
	Kubepods string `json:"kubepods"`
	Temp     string `json:"temp"`
	// ResumedFrom is the journal phase a rerun started from.
	ResumedFrom Phase `json:"resumed_from,omitempty"`
	Cgroups     int   `json:"cgroups"`
	Processes   int   `json:"processes"`
	// Moved counts pid moves, Exited the processes that were gone (ESRCH).
	Moved  int `json:"moved"`
	Exited int `json:"exited"`
	// MoveCharge is whether charges moved with the tasks (false on ≥6.13).
	MoveCharge bool `json:"move_charge"`
	// SettingWrites counts control-file writes made to copy settings.
	SettingWrites int `json:"setting_writes"`
	// BusyRetries counts rmdir/force_empty attempts retried after EBUSY.
	BusyRetries int `json:"busy_retries"`
	// Refused lists settings the kernel rejected on a rebuilt cgroup
	// ("<path>/<file>"); the inherited value was kept there.
	Refused  []string      `json:"refused,omitempty"`
	Checks   []Check       `json:"checks,omitempty"`
	Duration time.Duration `json:"duration_ns"`
}

// RunError is a failed run. It says whether the node was left untouched or
// is resumable, and how to go on.
type RunError struct {
	Err error
	// Phase is the last phase the journal recorded ("" when there is none).
	Phase   Phase
	Touched bool
	Journal string
}

func (e *RunError) Error() string {
	if !e.Touched {
		return fmt.Sprintf("%v; node untouched (this run changed no cgroup)", e.Err)
	}
	return fmt.Sprintf("%v; node is resumable: the journal %s records phase %q — rerun `verify migrate` to finish, or `verify migrate --rollback` to return to the original layout",
		e.Err, e.Journal, e.Phase)
}

func (e *RunError) Unwrap() error { return e.Err }

// Engine runs one migration or rollback.
type Engine struct {
	cfg      Config
	h        memcg.Hierarchy
	kubepods string
	temp     string
	j        *Journal
	mv       *mover
	rep      Report
	// tolerateMissing lets a rollback skip temp cgroups never created.
	tolerateMissing bool
}

// New checks cfg and returns an engine.
func New(cfg Config) (*Engine, error) {
	if cfg.Hierarchy.Root == "" || cfg.Kubepods == "" || cfg.StateDir == "" {
		return nil, errors.New("migrate: memory root, kubepods and state dir must be set")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.PidAlive == nil {
		cfg.PidAlive = procAlive
	}
	kp := strings.Trim(filepath.ToSlash(cfg.Kubepods), "/")
	e := &Engine{cfg: cfg, h: cfg.Hierarchy, kubepods: kp, temp: TempName(kp)}
	e.mv = &mover{h: e.h, log: cfg.Logger}
	e.rep = Report{Kubepods: e.h.Path(kp), Temp: e.h.Path(e.temp)}
	return e, nil
}

func procAlive(pid int) bool {
	_, err := os.Stat("/proc/" + strconv.Itoa(pid))
	return err == nil
}

// Migrate runs or resumes the migration.
func (e *Engine) Migrate() (*Report, error) {
	start := time.Now()
	j, err := loadJournal(e.cfg.StateDir)
	if err != nil {
		return nil, &RunError{Err: err}
	}
	if j != nil && (j.Kubepods != e.kubepods || j.Temp != e.temp) {
		return nil, &RunError{Err: fmt.Errorf("journal %s is for %s, not %s", journalPath(e.cfg.StateDir), j.Kubepods, e.kubepods), Phase: j.Phase, Touched: !j.Phase.terminal(), Journal: journalPath(e.cfg.StateDir)}
	}
	if j != nil && j.RollingBack && !j.Phase.terminal() {
		return nil, &RunError{Err: errors.New("a rollback is in progress"), Phase: j.Phase, Touched: true, Journal: journalPath(e.cfg.StateDir)}
	}
	if j != nil && j.Phase == PhaseDone {
		if ino, err := inode(e.h, e.kubepods); err == nil && ino == j.NewInode {
			e.rep.Outcome = OutcomeAlreadyMigrated
			e.rep.Message = fmt.Sprintf("%s was already migrated on %s (journal %s, same directory inode %d); nothing to do",
				e.h.Path(e.kubepods), j.Updated.Format(time.RFC3339), journalPath(e.cfg.StateDir), ino)
			e.rep.Cgroups, e.rep.Processes = j.Snapshot.Counts()
			return &e.rep, nil
		}
	}
	fresh := j == nil || j.Phase.terminal()
	if fresh {
		n, clean, err := kmemInactive(e.h, e.kubepods)
		if err != nil {
			return nil, &RunError{Err: err}
		}
		if clean {
			e.rep.Outcome = OutcomeAlreadyMigrated
			e.rep.Message = fmt.Sprintf("kmem accounting is off in all %d cgroups of %s (memory.kmem.slabinfo reads EIO): already migrated, nothing to do",
				n, e.h.Path(e.kubepods))
			e.rep.Cgroups = n
			return &e.rep, nil
		}
	}
	if err := e.preflight(); err != nil {
		return nil, e.failPreflight(err, j, fresh)
	}
	if fresh {
		if j, err = e.plan(); err != nil {
			return nil, e.fail(err, fresh)
		}
	} else {
		e.rep.ResumedFrom = j.Phase
		e.cfg.Logger.Info("resuming migration", "journal", journalPath(e.cfg.StateDir), "phase", j.Phase)
	}
	e.j = j
	if err := e.forward(); err != nil {
		return nil, e.fail(err, fresh)
	}
	e.countMoves()
	e.rep.Outcome = OutcomeMigrated
	e.rep.Message = fmt.Sprintf("%s migrated to a fresh tree (%d cgroups, %d processes)", e.h.Path(e.kubepods), e.rep.Cgroups, e.rep.Processes)
	e.rep.Duration = time.Since(start)
	return &e.rep, nil
}

func (e *Engine) preflight() error {
	if e.cfg.Preflight == nil {
		return nil
	}
	return e.cfg.Preflight()
}

// failPreflight reports a refused precondition: nothing changed in this
// run, but an unfinished journal means an earlier run left work to resume.
func (e *Engine) failPreflight(err error, j *Journal, fresh bool) error {
	if fresh {
		return &RunError{Err: err}
	}
	return &RunError{Err: err, Phase: j.Phase, Touched: true, Journal: journalPath(e.cfg.StateDir)}
}

// plan snapshots the tree and records it; nothing in cgroupfs changes.
func (e *Engine) plan() (*Journal, error) {
	if ok, err := exists(e.h, e.temp); err != nil {
		return nil, err
	} else if ok {
		return nil, fmt.Errorf("temporary tree %s exists but no unfinished journal is in %s: remove it by hand after checking it holds no processes",
			e.h.Path(e.temp), e.cfg.StateDir)
	}
	if err := CheckLayout(e.h, e.kubepods); err != nil {
		return nil, err
	}
	snap, err := takeSnapshot(e.h, e.kubepods)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	j := &Journal{Version: journalVersion, Kubepods: e.kubepods, Temp: e.temp, Phase: PhasePlanned, Started: now, Snapshot: snap}
	if err := saveJournal(e.cfg.StateDir, j); err != nil {
		return nil, err
	}
	e.j = j
	return j, e.afterPhase(PhasePlanned)
}

// fail turns err into a RunError that tells whether the node was touched.
// A run that created the journal and changed no cgroup removes the journal.
func (e *Engine) fail(err error, fresh bool) error {
	re := &RunError{Err: err, Journal: journalPath(e.cfg.StateDir)}
	if e.j == nil {
		return re
	}
	re.Phase = e.j.Phase
	var rerr error
	if rel, ok := e.vanishedRel(err); ok && !e.j.vanished(rel) {
		e.j.Vanished = append(e.j.Vanished, rel)
		rerr = saveJournal(e.cfg.StateDir, e.j)
	}
	tempExists, xerr := exists(e.h, e.temp)
	re.Touched = e.j.RollingBack || e.j.Phase != PhasePlanned || tempExists || xerr != nil
	if !re.Touched && fresh {
		rerr = errors.Join(rerr, removeJournal(e.cfg.StateDir))
	}
	if rerr != nil {
		re.Err = errors.Join(err, fmt.Errorf("also failed to update the journal: %w", rerr))
	}
	return re
}

// vanishedRel returns the kubepods-relative path of the cgroup a
// VanishedError names, when it is one of the planned cgroups.
func (e *Engine) vanishedRel(err error) (string, bool) {
	var ve *VanishedError
	if !errors.As(err, &ve) {
		return "", false
	}
	for _, prefix := range []string{e.kubepods, e.temp} {
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
func (e *Engine) record(p Phase) error {
	e.j.Phase = p
	if err := saveJournal(e.cfg.StateDir, e.j); err != nil {
		return err
	}
	e.cfg.Logger.Info("phase done", "phase", p)
	return e.afterPhase(p)
}

func (e *Engine) afterPhase(p Phase) error {
	if e.cfg.Hooks.AfterPhase == nil {
		return nil
	}
	return e.cfg.Hooks.AfterPhase(p)
}

// forward runs the phases after the journal's one.
func (e *Engine) forward() error {
	steps := []struct {
		done Phase
		what string
		run  func() error
	}{
		{PhaseTempBuilt, "build the temporary tree", func() error { return e.buildTree(e.temp) }},
		{PhaseMovedOut, "move processes to the temporary tree", func() error { return e.moveAll(e.kubepods, e.temp) }},
		{PhaseOldRemoved, "remove the old tree", func() error { return e.removeTree(e.kubepods, e.temp, true) }},
		{PhaseNewBuilt, "build the new kubepods tree", func() error { return e.buildTree(e.kubepods) }},
		{PhaseMovedBack, "move processes back", func() error { return e.moveBack() }},
		{PhaseDone, "remove the temporary tree and check invariants", func() error { return e.finish() }},
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

// finish removes the temporary tree and checks the invariants.
func (e *Engine) finish() error {
	if err := e.removeTree(e.temp, e.kubepods, false); err != nil {
		return err
	}
	e.rep.Checks = e.invariants(true)
	if err := checksError(e.rep.Checks); err != nil {
		return err
	}
	ino, err := inode(e.h, e.kubepods)
	if err != nil {
		return err
	}
	e.j.NewInode = ino
	return nil
}
