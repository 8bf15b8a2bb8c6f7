// Package acceptance is the flow of verify run: detect the node state,
// install the signed bundle, stop the kubelet, migrate the kubepods tree,
// start the kubelet and wait until it runs the new binary (and answers
// healthz), run the cleanup that may happen with the kubelet up, and assert
// that kmem accounting is off. Every step is recorded, and the kubelet
// downtime (stop issued → kubelet process back) and the cleanup time are
// reported apart; when a step fails the flow stops there, starts the
// kubelet again when that is safe, and says what to run next.
package acceptance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/nokmem/nokmem/verify/assert"
	"github.com/nokmem/nokmem/verify/binary"
	"github.com/nokmem/nokmem/verify/detect"
	"github.com/nokmem/nokmem/verify/install"
	"github.com/nokmem/nokmem/verify/memcg"
	"github.com/nokmem/nokmem/verify/report"
)

// Step names, in order. ExitCodes maps each to the exit code of a run that
// stopped there.
const (
	StepDetect   = "detect"
	StepInstall  = "install"
	StepBinaries = "binaries"
	StepStop     = "stop-kubelet"
	StepMigrate  = "migrate"
	StepStart    = "start-kubelet"
	StepCleanup  = "cleanup"
	StepAssert   = "assert"
)

// Steps lists the steps in the order they run.
var Steps = []string{StepDetect, StepInstall, StepBinaries, StepStop, StepMigrate, StepStart, StepCleanup, StepAssert}

// ExitCodes: 0 passed (or not applicable without --strict); otherwise the
// code of the step that failed. cleanup came last, so it has the last code.
var ExitCodes = map[string]int{
	StepDetect: 10, StepInstall: 11, StepBinaries: 12, StepStop: 13,
	StepMigrate: 14, StepStart: 15, StepAssert: 16, StepCleanup: 17,
}

// Outcomes of a run.
const (
	OutcomePassed        = "passed"
	OutcomeNotApplicable = "not-applicable"
	// OutcomeHealthy: a 3.10 node that needs nothing (a systemd-driver
	// node without kmem-active cgroups).
	OutcomeHealthy = "healthy"
	OutcomeFailed  = "failed"
)

// MigrateFunc migrates the kubepods tree. touched reports whether a failed
// migration changed any cgroup (then it is resumable, and the kubelet must
// not be started on the half-migrated tree).
type MigrateFunc func(kubepods string) (summary string, touched bool, err error)

// InstallFunc checks and installs the bundle (see verify/install).
type InstallFunc func() (*install.Record, error)

// CleanupFunc does the part of the migration that may run with the kubelet
// up (removing the old tree) and summarises it.
type CleanupFunc func(ctx context.Context) (summary string, err error)

// Config of a run.
type Config struct {
	Hierarchy memcg.Hierarchy
	Detect    detect.Options
	// Install, when not nil, installs the bundle before the kubelet is stopped.
	Install InstallFunc
	Service Service
	Migrate MigrateFunc
	// Kubelet, when not nil, is how the start step checks that the kubelet
	// came back (its process runs the expected binary; healthz answers).
	Kubelet *KubeletCheck
	// Cleanup, when not nil, runs after the kubelet is back.
	Cleanup CleanupFunc
	// Strict makes "not applicable" a failure.
	Strict bool
	Logger *slog.Logger
}

// Result is the JSON report of a run.
type Result struct {
	Start   time.Time `json:"start"`
	Outcome string    `json:"outcome"`
	// StoppedAt is the failed step, "" when the run went through.
	StoppedAt string `json:"stopped_at,omitempty"`
	ExitCode  int    `json:"exit_code"`
	// Next says what to run next after a failure.
	Next string `json:"next,omitempty"`
	// KubeletRestarted is true when the kubelet was started again after a failure.
	KubeletRestarted bool            `json:"kubelet_restarted,omitempty"`
	Steps            []report.Step   `json:"steps"`
	Detect           *detect.Report  `json:"detect,omitempty"`
	Install          *install.Record `json:"install,omitempty"`
	Migrate          string          `json:"migrate,omitempty"`
	Assert           *assert.Result  `json:"assert,omitempty"`
	// Downtime is from the stop command being issued to the kubelet
	// process running again (0 when the kubelet was not stopped or not seen
	// back); Cleanup is how long the cleanup step took, with the kubelet up.
	Downtime        time.Duration `json:"kubelet_downtime_ns"`
	DowntimeSeconds float64       `json:"kubelet_downtime_seconds"`
	// HealthzDowntime is from the stop command to healthz answering 200
	// again (0 without --healthz).
	HealthzDowntime        time.Duration `json:"kubelet_healthz_downtime_ns,omitempty"`
	HealthzDowntimeSeconds float64       `json:"kubelet_healthz_downtime_seconds,omitempty"`
	// Identify is how long confirming the restarted process's binary took
	// after it was seen; it is not part of Downtime.
	Identify        time.Duration `json:"kubelet_identify_ns"`
	IdentifySeconds float64       `json:"kubelet_identify_seconds"`
	Cleanup         time.Duration `json:"cleanup_ns"`
	CleanupSeconds  float64       `json:"cleanup_seconds"`
	CleanupSummary  string        `json:"cleanup_summary,omitempty"`
	// Changed lists everything the run changed on the node, in order
	// (scratch cgroups created and removed included); empty when it
	// changed nothing.
	Changed []string `json:"changed"`
}

type runner struct {
	cfg       Config
	ctx       context.Context
	res       *Result
	stopped   bool          // the kubelet was stopped by this run
	stoppedAt time.Time     // when the stop command was issued
	kubelet   binary.Binary // the kubelet found by the binaries step
	log       *slog.Logger
}

// Run runs the flow. It never returns an error: failures are in the Result.
func Run(ctx context.Context, cfg Config) *Result {
	r := &runner{cfg: cfg, ctx: ctx, res: &Result{Start: time.Now().UTC(), Steps: []report.Step{}, Changed: []string{}}, log: cfg.Logger}
	if r.log == nil {
		r.log = slog.Default()
	}
	r.run()
	if r.res.Outcome == "" {
		r.res.Outcome = OutcomePassed
	}
	return r.res
}

// step runs f as step name, records it and reports whether it passed.
func (r *runner) step(name string, f func(*report.Step) error) bool {
	s := report.Step{Name: name, Status: report.Passed}
	start := time.Now()
	err := f(&s)
	s.Duration = time.Since(start)
	if err != nil {
		s.Status, s.Message = report.Failed, err.Error()
	}
	r.res.Steps = append(r.res.Steps, s)
	r.log.Info("step", "name", name, "status", s.Status, "message", s.Message)
	return err == nil
}

// changed records a change to the node.
func (r *runner) changed(format string, args ...any) {
	r.res.Changed = append(r.res.Changed, fmt.Sprintf(format, args...))
}

func (r *runner) skip(names []string, why string) {
	for _, n := range names {
		r.res.Steps = append(r.res.Steps, report.Step{Name: n, Status: report.Skipped, Message: why})
	}
}

func (r *runner) fail(step, next string) {
	r.res.Outcome, r.res.StoppedAt, r.res.ExitCode = OutcomeFailed, step, ExitCodes[step]
	r.res.Next = next
	idx := 0
	for i, s := range Steps {
		if s == step {
			idx = i
		}
	}
	r.skip(Steps[idx+1:], "not run: the run stopped at "+step)
}

// restart starts the kubelet again after a failure, when this run stopped it.
func (r *runner) restart() {
	if !r.stopped {
		return
	}
	if err := r.cfg.Service.Start(r.ctx); err != nil {
		r.res.Next += fmt.Sprintf("; starting the kubelet again failed (%v): start it by hand", err)
		return
	}
	r.changed("started the kubelet again")
	r.stopped = false
	r.res.KubeletRestarted = true
}

func (r *runner) run() {
	h := r.cfg.Hierarchy
	var d *detect.Report
	if !r.step(StepDetect, func(s *report.Step) error {
		var err error
		d, err = detect.Run(r.cfg.Detect)
		if r.cfg.Detect.ProbeSlabinfo {
			r.changed("semantics probe (--probe-slabinfo): created and removed a scratch child of the memory root")
		}
		if err != nil {
			return err
		}
		r.res.Detect = d
		if p := d.IDProbe; p != nil {
			r.changed("ID probe (--probe-ids): created and removed %d scratch cgroups under the memory root", p.Created)
		}
		s.Details = detectSummary(d)
		if d.Semantics.Kind == memcg.KindUnknown {
			// The safe side of detect's "unknown" (exit 2): neither
			// migrate (which refuses it too) nor "not applicable".
			return fmt.Errorf("the kernel's kmem semantics are unknown (%s): verify cannot tell whether a migration is needed, or prove it worked", d.Semantics.Reason)
		}
		if !d.Semantics310 {
			return nil
		}
		switch d.Driver {
		case memcg.DriverNone:
			return fmt.Errorf("%w under %s: nothing to migrate (is the kubelet running with --cgroups-per-qos and the cgroupfs driver?)", memcg.ErrNoKubepods, h.Root)
		case memcg.DriverSystemd:
			// Judged by its cgroups (detect/systemd.go): systemd owns
			// them, so verify never recreates them.
			if ps := d.Problems(); len(ps) > 0 {
				var texts []string
				for _, p := range ps {
					texts = append(texts, p.Text)
				}
				return errors.New(strings.Join(texts, "; "))
			}
			s.Details += "; " + d.DriverNote
		}
		return nil
	}) {
		r.fail(StepDetect, "fix the error above and rerun `verify run`; nothing was changed")
		return
	}

	if !d.Semantics310 {
		r.notApplicable(h)
		return
	}
	if d.Driver == memcg.DriverSystemd {
		r.healthy(h, d)
		return
	}

	if r.cfg.Install == nil {
		r.skip([]string{StepInstall}, "no --bundle given")
	} else if !r.step(StepInstall, func(s *report.Step) error {
		rec, err := r.cfg.Install()
		if err != nil {
			return err
		}
		r.res.Install = rec
		var parts []string
		for _, e := range rec.Entries {
			if slices.Contains(rec.Replaced, e.Installed) {
				parts = append(parts, fmt.Sprintf("replaced %s %s → %s", e.Installed, short(e.Original.SHA256), short(e.NewSHA256)))
				r.changed("installed %s (sha256 %s → %s; backup in the state dir)", e.Installed, short(e.Original.SHA256), short(e.NewSHA256))
			}
		}
		for _, d := range rec.Kept {
			parts = append(parts, fmt.Sprintf("kept %s: %s", d.Path, d.Reason))
		}
		s.Details = strings.Join(parts, "; ")
		return nil
	}) {
		r.fail(StepInstall, "fix the error above and rerun `verify run`; no binary and no cgroup was changed")
		return
	}

	if !r.step(StepBinaries, func(s *report.Step) error {
		bins, err := binary.Find(r.cfg.Detect.Binaries)
		if err != nil {
			return err
		}
		var bad, found []string
		for _, b := range bins {
			if b.Name == "kubelet" && r.kubelet.Path == "" {
				r.kubelet = b
			}
			found = append(found, fmt.Sprintf("%s %s (%s)", b.Name, b.Path, b.Kind))
			if b.Problem() { // neither a nokmem build nor a version that does not activate kmem
				bad = append(bad, fmt.Sprintf("%s at %s is %s: %s", b.Name, b.Path, b.Kind, b.Reason))
			}
		}
		s.Details = strings.Join(found, "; ")
		if len(bins) == 0 {
			return errors.New("no kubelet or runc binary found: a migrated tree could be re-activated by whatever creates pod cgroups")
		}
		if len(bad) > 0 {
			return fmt.Errorf("not every kubelet/runtime binary is a nokmem build or a version that does not activate kmem, so a migrated tree would become kmem-active again: %s", strings.Join(bad, "; "))
		}
		return nil
	}) {
		r.fail(StepBinaries, "install the nokmem bundle (`verify run --bundle BUNDLE.tar.gz`, or `verify install --bundle`) and rerun; no cgroup was changed")
		return
	}

	// Identify the kubelet to watch for now: nothing of it runs inside the
	// downtime window.
	k := r.kubeletCheck()
	if !r.step(StepStop, func(*report.Step) error {
		r.stopped = true // a failed stop may have half-stopped it
		r.stoppedAt = time.Now()
		r.changed("issued the kubelet stop command")
		return r.cfg.Service.Stop(r.ctx)
	}) {
		r.fail(StepStop, "the kubelet could not be stopped; check the service command, then rerun `verify run`; no cgroup was changed")
		r.restart()
		return
	}

	var touched bool
	if !r.step(StepMigrate, func(s *report.Step) error {
		sum, t, err := r.cfg.Migrate(d.Kubepods)
		touched = t
		r.res.Migrate = sum
		s.Details = sum
		switch {
		case err == nil:
			r.changed("migrated %s: %s", h.Path(d.Kubepods), sum)
		case t:
			r.changed("half migrated %s (resumable with verify migrate)", h.Path(d.Kubepods))
		}
		return err
	}) {
		if touched {
			r.fail(StepMigrate, "the kubepods tree is half migrated, so the kubelet was left stopped: run `verify migrate` to finish (or `verify migrate --rollback` to undo), then start the kubelet and run `verify assert`")
			return
		}
		r.fail(StepMigrate, "no cgroup was changed; the kubelet was started again; fix the error above and rerun `verify run`")
		r.restart()
		return
	}

	if !r.step(StepStart, func(s *report.Step) error {
		if err := r.cfg.Service.Start(r.ctx); err != nil {
			return err
		}
		r.changed("started the kubelet")
		r.stopped = false
		if r.cfg.Kubelet == nil {
			// Nothing to watch: count until the start command returned.
			r.setDowntime(time.Since(r.stoppedAt))
			return nil
		}
		if k == nil {
			return errors.New("no kubelet binary to watch for")
		}
		back, err := k.Wait(r.ctx)
		s.Details = back.Detail
		if err != nil {
			return err
		}
		r.setDowntime(back.Seen.Sub(r.stoppedAt))
		r.res.Identify, r.res.IdentifySeconds = back.Identify, back.Identify.Seconds()
		if !back.Healthy.IsZero() {
			d := back.Healthy.Sub(r.stoppedAt)
			r.res.HealthzDowntime, r.res.HealthzDowntimeSeconds = d, d.Seconds()
		}
		s.Details += fmt.Sprintf("; kubelet downtime %s", r.res.Downtime.Round(time.Millisecond))
		return nil
	}) {
		r.fail(StepStart, "the migration is done but the kubelet did not come back: check the kubelet service (journalctl -u kubelet), start it by hand, then run `verify assert`")
		return
	}

	if r.cfg.Cleanup == nil {
		r.skip([]string{StepCleanup}, "no cleanup step configured")
	} else if !r.step(StepCleanup, func(s *report.Step) error {
		start := time.Now()
		sum, err := r.cfg.Cleanup(r.ctx)
		r.res.Cleanup, r.res.CleanupSeconds = time.Since(start), time.Since(start).Seconds()
		r.res.CleanupSummary, s.Details = sum, sum
		if err == nil {
			r.changed("cleanup: %s", sum)
		}
		return err
	}) {
		r.fail(StepCleanup, "the kubelet is up on the migrated tree, but removing the old tree failed: rerun `verify migrate` to finish the cleanup, then `verify assert`")
		return
	}

	r.assert(h, d.Kubepods)
}

// detectSummary is the detect step's line: only the fields detect filled
// (the slabinfo probe, for one, runs only when asked for).
func detectSummary(d *detect.Report) string {
	parts := []string{"kernel " + d.Kernel}
	if d.Slabinfo != "" {
		parts = append(parts, fmt.Sprintf("slabinfo %s", d.Slabinfo))
	}
	if d.Driver != "" {
		parts = append(parts, "driver "+d.Driver)
	}
	if d.Kubepods != "" {
		parts = append(parts, fmt.Sprintf("%d cgroups under %q, %d kmem-active", d.KubepodsCgroups, d.Kubepods, len(d.KmemActive)))
	}
	if d.Leaked.Available {
		parts = append(parts, fmt.Sprintf("%d leaked IDs (%s)", d.Leaked.IDs, d.Leaked.Basis()))
	}
	return strings.Join(parts, ", ")
}

// kubeletCheck is the configured check for the kubelet the binaries step
// found (after an install, the new one), prepared; nil without a binary.
func (r *runner) kubeletCheck() *KubeletCheck {
	if r.cfg.Kubelet == nil {
		return nil
	}
	k := *r.cfg.Kubelet
	if k.Path == "" {
		k.Path, k.SHA256 = r.kubelet.Path, r.kubelet.SHA256
	}
	if k.Path == "" {
		return nil
	}
	k.Prepare()
	return &k
}

func (r *runner) setDowntime(d time.Duration) {
	r.res.Downtime, r.res.DowntimeSeconds = d, d.Seconds()
}

// assert checks the migrated kubepods with the probe child (what new pods
// inherit).
func (r *runner) assert(h memcg.Hierarchy, kubepods string) {
	if !r.step(StepAssert, func(s *report.Step) error {
		a, err := assert.Check(h, assert.Options{Kubepods: kubepods, OSRelease: r.cfg.Detect.OSRelease, Probe: true, Strict: r.cfg.Strict})
		if a != nil && a.Probe != "" {
			r.changed("assert probe: created and removed %s", h.Path(a.Probe))
		}
		if err != nil {
			return err
		}
		r.res.Assert = a
		s.Details = fmt.Sprintf("%d cgroups checked, %d offenders", a.Checked, len(a.Offenders))
		if !a.Passed {
			var offs []string
			for _, o := range a.Offenders {
				offs = append(offs, fmt.Sprintf("%s (%s)", o.Path, o.Slabinfo))
			}
			return fmt.Errorf("kmem accounting is on for: %s", strings.Join(offs, ", "))
		}
		return nil
	}) {
		r.fail(StepAssert, "something activated kmem accounting again: check that every runtime on the node is a nokmem build (`verify detect`), then rerun `verify migrate` and `verify assert`")
	}
}

// healthy records a 3.10 node that needs nothing (a systemd-driver node
// without kmem-active cgroups, whose binaries activate kmem only on
// request): nothing is changed, and a read-only assert confirms it.
func (r *runner) healthy(h memcg.Hierarchy, d *detect.Report) {
	why := "not needed: " + d.DriverNote
	r.skip([]string{StepInstall, StepBinaries, StepStop, StepMigrate, StepStart, StepCleanup}, why)
	r.res.Outcome = OutcomeHealthy
	if !r.step(StepAssert, func(s *report.Step) error {
		a, err := assert.Check(h, assert.Options{Kubepods: d.Kubepods, OSRelease: r.cfg.Detect.OSRelease})
		if err != nil {
			return err
		}
		r.res.Assert = a
		s.Details = fmt.Sprintf("%d cgroups checked, %d offenders (read only)", a.Checked, len(a.Offenders))
		if !a.Passed {
			return fmt.Errorf("%d cgroups under %s became kmem-active since detect: rerun `verify detect`", len(a.Offenders), h.Path(d.Kubepods))
		}
		return nil
	}) {
		r.fail(StepAssert, "rerun `verify detect` for the advice on kmem-active systemd-managed cgroups")
	}
}

// notApplicable records a kernel without 3.10 semantics: nothing is
// changed; a read-only assert reports the reason.
func (r *runner) notApplicable(h memcg.Hierarchy) {
	why := "not applicable: kernel without 3.10 semantics, nothing changed"
	r.skip([]string{StepInstall, StepBinaries, StepStop, StepMigrate, StepStart, StepCleanup}, why)
	a, err := assert.Check(h, assert.Options{OSRelease: r.cfg.Detect.OSRelease, Strict: r.cfg.Strict})
	if err != nil {
		r.res.Steps = append(r.res.Steps, report.Step{Name: StepAssert, Status: report.Failed, Message: err.Error()})
		r.res.Outcome, r.res.StoppedAt, r.res.ExitCode = OutcomeFailed, StepAssert, ExitCodes[StepAssert]
		return
	}
	r.res.Assert = a
	st := report.Step{Name: StepAssert, Status: report.Skipped, Message: a.Reason}
	r.res.Outcome = OutcomeNotApplicable
	if r.cfg.Strict {
		st.Status = report.Failed
		r.res.StoppedAt, r.res.ExitCode = StepAssert, ExitCodes[StepAssert]
		r.res.Next = "--strict: this kernel cannot prove kmem accounting is off by slabinfo EIO; run without --strict on non-3.10 kernels"
	}
	r.res.Steps = append(r.res.Steps, st)
}

func short(sum string) string {
	if len(sum) > 12 {
		return sum[:12]
	}
	if sum == "" {
		return "(none)"
	}
	return sum
}
