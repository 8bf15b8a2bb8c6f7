package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/nokmem/nokmem/verify/detect"
	"github.com/nokmem/nokmem/verify/memcg"
	"github.com/nokmem/nokmem/verify/migrate"
	"github.com/nokmem/nokmem/verify/report"
)

func init() { subcommands = append(subcommands, newMigrateCmd) }

// migrateFlags are the inputs of verify migrate.
type migrateFlags struct {
	kubepods    string
	kubeletPath string
	knownSums   string
	procRoot    string
	dryRun      bool
	force       bool
	rollback    bool
}

func newMigrateCmd(g *globalOptions) *cobra.Command {
	var f migrateFlags
	cmd := &cobra.Command{
		Use:         "migrate",
		Annotations: annotations(mutating, usesRoot),
		Short:       "Replace the kmem-active kubepods memory cgroup tree with a fresh one, keeping every process and setting",
		Long: `migrate moves every cgroup, setting and process of kubepods into a temporary
sibling tree directly under the memory root, removes the old (kmem-active)
tree, creates kubepods anew, moves everything back and removes the temporary
tree. memory.kmem.limit_in_bytes is never written.

Each phase is recorded in a journal in --state-dir (fsync'ed). After a crash,
rerun migrate to finish, or run migrate --rollback to put every process back
into the original layout. On a migrated node migrate is a no-op that says so.

Preconditions: the kubelet is stopped, the installed kubelet is a nokmem build
(unless --force), the memory hierarchy is cgroup v1 with the cgroupfs driver's
kubepods (a systemd-driver node, kubepods.slice, is refused).

Exit status: 0 done (or nothing to do), 1 failed; the message says whether the
node was left untouched or is resumable.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runMigrate(g, &f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.kubepods, "kubepods", "kubepods", "the kubelet's cgroupfs-driver tree, relative to --root")
	fl.StringVar(&f.kubeletPath, "kubelet-path", "", "installed kubelet binary, checked for a nokmem build (default: the first kubelet in "+strings.Join(detect.DefaultSearchDirs, ", ")+")")
	fl.StringVar(&f.knownSums, "known-sums", "", "SHA256SUMS of a nokmem release: a kubelet with such a checksum counts as nokmem")
	fl.StringVar(&f.procRoot, "proc", "/proc", "process table scanned for a running kubelet")
	fl.BoolVar(&f.dryRun, "dry-run", false, "print the plan (counts of cgroups, processes and operations) and change nothing")
	fl.BoolVar(&f.force, "force", false, "migrate even when the installed kubelet is not a nokmem build")
	fl.BoolVar(&f.rollback, "rollback", false, "return an unfinished migration to the original layout")
	return cmd
}

func runMigrate(g *globalOptions, f *migrateFlags) error {
	e, err := migrate.New(migrate.Config{
		Hierarchy: memcg.Hierarchy{Root: g.Root},
		Kubepods:  f.kubepods,
		StateDir:  g.StateDir,
		Logger:    g.Logger,
		Preflight: func() error { return migratePreconditions(f) },
	})
	if err != nil {
		return err
	}
	if f.dryRun {
		p, err := e.DryRun()
		if err != nil {
			return err
		}
		if g.JSON() {
			return report.WriteJSON(g.Stdout, p)
		}
		printPlan(g.Stderr, p)
		return nil
	}
	var rep *migrate.Report
	if f.rollback {
		rep, err = e.Rollback()
	} else {
		rep, err = e.Migrate()
	}
	if err != nil {
		return err
	}
	if g.JSON() {
		return report.WriteJSON(g.Stdout, rep)
	}
	printMigrate(g.Stderr, rep)
	return nil
}

// migratePreconditions: no running kubelet (it would create and delete pod
// cgroups under the tree being replaced) and, unless --force, a nokmem
// kubelet (a stock one re-activates kmem on every cgroup it creates).
func migratePreconditions(f *migrateFlags) error {
	if err := migrate.CheckKubeletStopped(f.procRoot); err != nil {
		return err
	}
	if f.force || f.rollback {
		return nil
	}
	var sums map[string]string
	if f.knownSums != "" {
		var err error
		if sums, err = detect.ReadKnownSums(f.knownSums); err != nil {
			return err
		}
	}
	path := f.kubeletPath
	if path == "" {
		path = migrate.FindKubelet()
	}
	return migrate.CheckKubeletBuild(path, sums)
}

func printPlan(w io.Writer, p *migrate.Plan) {
	fmt.Fprintf(w, "plan for %s (temporary tree %s)\n", p.Kubepods, p.Temp)
	if p.Resume != "" {
		fmt.Fprintf(w, "  an unfinished migration is recorded at phase %s: a run resumes it\n", p.Resume)
	}
	fmt.Fprintf(w, "  cgroups:   %d\n  processes: %d\n", p.Cgroups, p.Processes)
	o := p.Ops
	fmt.Fprintf(w, "  operations: mkdir %d, setting copies ≤%d, move_charge_at_immigrate writes %d, pid moves %d, force_empty %d, rmdir %d, kmem.limit_in_bytes writes %d\n",
		o.Mkdir, o.SettingCopies, o.MoveChargeWrite, o.PidMoves, o.ForceEmpty, o.Rmdir, o.KmemLimitWrites)
	fmt.Fprintln(w, "dry run: nothing was changed")
}

func printMigrate(w io.Writer, r *migrate.Report) {
	fmt.Fprintf(w, "%s: %s\n", r.Outcome, r.Message)
	if r.ResumedFrom != "" {
		fmt.Fprintf(w, "  resumed from phase %s\n", r.ResumedFrom)
	}
	if r.Outcome == migrate.OutcomeMigrated || r.Outcome == migrate.OutcomeRolledBack {
		fmt.Fprintf(w, "  %d cgroups, %d processes, %d pid moves (%d exited meanwhile), charges moved: %v, %d setting writes, %s\n",
			r.Cgroups, r.Processes, r.Moved, r.Exited, r.MoveCharge, r.SettingWrites, r.Duration.Round(time.Millisecond))
	}
	for _, s := range r.Refused {
		fmt.Fprintf(w, "  kernel refused (inherited value kept): %s\n", s)
	}
	for _, c := range r.Checks {
		mark := "ok  "
		if !c.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(w, "  [%s] %s: %s\n", mark, c.Name, c.Detail)
	}
}
