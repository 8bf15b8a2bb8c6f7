package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/nokmem/nokmem/verify/binary"
	"github.com/nokmem/nokmem/verify/memcg"
	"github.com/nokmem/nokmem/verify/migrate"
	"github.com/nokmem/nokmem/verify/report"
)

func init() { subcommands = append(subcommands, newMigrateCmd) }

// migrateFlags are the inputs of verify migrate.
type migrateFlags struct {
	kubepods     string
	kubeletPath  string
	osRelease    string
	knownSums    string
	procRoot     string
	dryRun       bool
	force        bool
	allowKubelet bool
	noCleanup    bool
	rollback     bool
	abandon      bool
	preflight    bool
}

func newMigrateCmd(g *globalOptions) *cobra.Command {
	var f migrateFlags
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Replace the kmem-active kubepods memory cgroup tree with a fresh one, keeping every process and setting",
		Long: `migrate replaces kubepods with a fresh tree that has the same cgroups,
settings and processes but no kernel-memory accounting. The critical part,
while the kubelet must be stopped: build the fresh tree under a temporary name
directly under the memory root, move every process into it once, rename the old
kubepods aside (nokmem-migrate-old-<kubepods>) and rename the fresh tree to
kubepods. Then the kubelet may start again, and the old tree is removed
(rmdir only, leaf first; no memory.force_empty, which on 3.10 only sleeps
0.5 s per cgroup that holds kernel memory). memory.kmem.limit_in_bytes is
never written.

Each phase is recorded in a checksummed journal in --state-dir (fsync'ed).
After a crash, rerun migrate to finish, or run migrate --rollback (before the
fresh tree is at kubepods) to put every process back into the original,
kmem-active tree. migrate --abandon sets a journal aside without touching any
cgroup. Once the fresh tree is at kubepods a rerun only removes the old tree,
and may run with the kubelet running. On a migrated node migrate is a no-op
that says so. The state table is in docs/migration-states.md.

Preconditions: no kubelet process in the --proc table (unless
--allow-running-kubelet), the installed kubelet is a nokmem build (unless
--force; identifying it hashes the binary and runs its --version, seconds on
a slow machine: run migrate --preflight first, with the kubelet still up, and
the migration inside the window only confirms the unchanged file by a stat), the kernel has 3.10 semantics as verify detect decides them (a 3.x kernel
release, --os-release, and memory.kmem.slabinfo of the memory root reads
EIO; elsewhere memcg IDs are freed at rmdir and migrating is pointless, and
where detect says "unknown" the migration is refused as well: unless
--force, and --dry-run says so), the memory
hierarchy is cgroup v1 with the cgroupfs driver's kubepods (a systemd-driver
node, kubepods.slice, is refused).

Exit status: 0 done (or nothing to do), 1 failed (the message says whether the
node was left untouched or is resumable, what exists, and what to run; also
a kernel whose semantics are unknown), 3 refused: a kernel without 3.10
semantics.`,
		Args:        cobra.NoArgs,
		Annotations: annotations(mutating, usesRoot),
		RunE:        func(cmd *cobra.Command, _ []string) error { return runMigrate(g, &f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.kubepods, "kubepods", memcg.KubepodsCgroupfs, "the kubelet's cgroupfs-driver tree, relative to --root")
	fl.StringVar(&f.kubeletPath, "kubelet-path", "", "installed kubelet binary, checked for a nokmem build (default: the first kubelet in "+strings.Join(binary.DefaultSearchDirs, ", ")+")")
	fl.StringVar(&f.osRelease, "os-release", memcg.DefaultOSRelease, "file holding the kernel release (the kernel's semantics are decided as verify detect decides them)")
	fl.StringVar(&f.knownSums, "known-sums", "", "SHA256SUMS of a nokmem release: a kubelet with such a checksum counts as nokmem")
	fl.StringVar(&f.procRoot, "proc", "/proc", "process table: scanned for a running kubelet, and for every liveness check")
	fl.BoolVar(&f.dryRun, "dry-run", false, "print the plan (counts of cgroups, processes and operations) and change nothing")
	fl.BoolVar(&f.force, "force", false, "migrate even when the installed kubelet is not a nokmem build, or the kernel has no 3.10 semantics")
	fl.BoolVar(&f.allowKubelet, "allow-running-kubelet", false, "migrate even while a kubelet process runs (it may create or remove pod cgroups meanwhile)")
	fl.BoolVar(&f.noCleanup, "no-cleanup", false, "stop once the fresh tree is at kubepods; a later `verify migrate` removes the old tree")
	fl.BoolVar(&f.rollback, "rollback", false, "return an unfinished migration (before the fresh tree is at kubepods) to the original layout")
	fl.BoolVar(&f.abandon, "abandon", false, "set the migration journal aside without touching any cgroup, and say what exists on the node")
	fl.BoolVar(&f.preflight, "preflight", false, "with the kubelet still running: check the kernel, the layout and the installed kubelet, record the kubelet in --state-dir, change no cgroup; a migration within the hour then skips identifying the kubelet")
	cmd.MarkFlagsMutuallyExclusive("rollback", "abandon", "dry-run", "preflight")
	return cmd
}

func runMigrate(g *globalOptions, f *migrateFlags) error {
	h := memcg.Hierarchy{Root: g.Root}
	pre, err := f.preconditions(g, h)
	if err != nil {
		return err
	}
	e, err := migrate.New(migrate.Config{
		Hierarchy: h,
		Kubepods:  f.kubepods,
		StateDir:  g.StateDir,
		Logger:    g.Logger,
		Proc:      f.procRoot,
		Preflight: func() error { return migrateHint(pre.Check(f.rollback)) },
	})
	if err != nil {
		return err
	}
	if f.preflight {
		msg, err := pre.RecordPreflight()
		if err != nil {
			return migrateExit(migrateHint(err))
		}
		fmt.Fprintf(g.Stdout, "preflight passed: %s; now stop the kubelet, run `verify migrate --no-cleanup`, start it\n", msg)
		return nil
	}
	if f.dryRun {
		if err := pre.Semantics(); err != nil {
			return migrateExit(migrateHint(fmt.Errorf("dry run: a migration would be refused: %w", err)))
		}
		p, err := e.DryRun()
		if err != nil {
			return err
		}
		if g.JSON() {
			return report.WriteJSON(g.Stdout, p)
		}
		printPlan(g.Stdout, p)
		return nil
	}
	var rep *migrate.Report
	switch {
	case f.abandon:
		rep, err = e.Abandon()
	case f.rollback:
		rep, err = e.Rollback()
	case f.noCleanup:
		rep, err = e.Critical()
	default:
		rep, err = e.Migrate()
	}
	if err != nil {
		return migrateExit(err)
	}
	if g.JSON() {
		return report.WriteJSON(g.Stdout, rep)
	}
	printMigrate(g.Stdout, rep)
	return nil
}

// preconditions are migrate's checks, from the flags.
func (f *migrateFlags) preconditions(g *globalOptions, h memcg.Hierarchy) (migrate.Preconditions, error) {
	p := migrate.Preconditions{Hierarchy: h, Kubepods: f.kubepods, OSRelease: f.osRelease, Proc: f.procRoot, StateDir: g.StateDir,
		KubeletPath: f.kubeletPath, AllowKubelet: f.allowKubelet, Force: f.force, Logger: g.Logger}
	if f.knownSums != "" {
		sums, err := binary.ReadKnownSums(f.knownSums)
		if err != nil {
			return p, err
		}
		p.KnownSums = sums
	}
	return p, nil
}

// migrateHint adds the flags that answer a refusal: --kubelet-path for a
// stock or missing kubelet, --force for it and for the kernel semantics.
func migrateHint(err error) error {
	switch {
	case errors.Is(err, migrate.ErrStockKubelet):
		err = fmt.Errorf("%w (--kubelet-path names the installed kubelet; --force migrates anyway)", err)
	case errors.Is(err, migrate.ErrNoIDLeak), errors.Is(err, migrate.ErrUnknownSemantics):
		err = fmt.Errorf("%w; use --force to migrate anyway", err)
	}
	return err
}

// migrateExit gives a refusal on a modern kernel its own exit code.
func migrateExit(err error) error {
	if errors.Is(err, migrate.ErrNoIDLeak) {
		return withExitCode(exitPointless, err)
	}
	return err
}

func printPlan(w io.Writer, p *migrate.Plan) {
	fmt.Fprintf(w, "plan for %s (fresh tree built as %s, old tree set aside as %s)\n", p.Kubepods, p.Temp, p.Aside)
	if p.Resume != "" {
		fmt.Fprintf(w, "  an unfinished migration is recorded at phase %s: a run resumes it\n", p.Resume)
	}
	fmt.Fprintf(w, "  cgroups:   %d\n  processes: %d\n", p.Cgroups, p.Processes)
	o := p.Ops
	fmt.Fprintf(w, "  kubelet stopped: mkdir %d, setting writes %d, move_charge_at_immigrate writes %d, pid moves %d, renames %d\n", o.Mkdir, o.SettingCopies, o.MoveChargeWrite, o.PidMoves, o.Renames)
	fmt.Fprintf(w, "  afterwards: rmdir %d, force_empty %d; kmem.limit_in_bytes writes %d\n", o.Rmdir, o.ForceEmpty, o.KmemLimitWrites)
	fmt.Fprintln(w, "dry run: nothing was changed")
}

func printMigrate(w io.Writer, r *migrate.Report) {
	fmt.Fprintf(w, "%s: %s\n", r.Outcome, r.Message)
	if r.ResumedFrom != "" {
		fmt.Fprintf(w, "  resumed from phase %s\n", r.ResumedFrom)
	}
	switch r.Outcome {
	case migrate.OutcomeMigrated, migrate.OutcomeSwapped, migrate.OutcomeCleaned, migrate.OutcomeRolledBack:
		fmt.Fprintf(w, "  %d cgroups, %d processes, %d pid moves (%d exited meanwhile), charges moved: %v, %d setting writes, %d old cgroups removed\n",
			r.Cgroups, r.Processes, r.Moved, r.Exited, r.MoveCharge, r.SettingWrites, r.Removed)
		fmt.Fprintf(w, "  time: critical part (kubelet stopped) %s, cleanup %s; operations: %v\n",
			r.Critical.Round(time.Millisecond), r.Cleanup.Round(time.Millisecond), r.Ops)
	}
	for _, l := range []struct {
		what  string
		items []string
	}{
		{"kernel refused (inherited value kept)", r.Refused},
		{"created since the swap in the fresh tree (accepted)", r.NewCgroups},
		{"removed since the swap (accepted)", r.Gone},
		{"adopted from the old tree", r.Adopted},
		{"vanished from the old tree (kept in the fresh one)", r.Vanished},
		{"found in the old tree and moved", r.Swept},
		{"threads regrouped", r.Regrouped},
	} {
		for _, s := range l.items {
			fmt.Fprintf(w, "  %s: %s\n", l.what, s)
		}
	}
	for _, c := range r.Checks {
		mark := "ok  "
		if !c.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(w, "  [%s] %s: %s\n", mark, c.Name, c.Detail)
	}
}
