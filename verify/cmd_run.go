package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/nokmem/nokmem/verify/acceptance"
	"github.com/nokmem/nokmem/verify/install"
	"github.com/nokmem/nokmem/verify/memcg"
	"github.com/nokmem/nokmem/verify/migrate"
	"github.com/nokmem/nokmem/verify/report"
)

func init() { subcommands = append(subcommands, newRunCmd) }

func newRunCmd(g *globalOptions) *cobra.Command {
	var (
		df                detectFlags
		inf               installFlags
		stopCmd, startCmd string
		junitPath, jsonTo string
		strict            bool
		kc                acceptance.KubeletCheck
	)
	cmd := &cobra.Command{
		Use:   "run --bundle BUNDLE.tar.gz [--pubkey KEY]",
		Short: "Put nokmem on a node: detect, install the bundle, stop kubelet, migrate, start kubelet, assert",
		Long: `run is the one command that puts nokmem on a node. It detects the node state;
installs the signed bundle given by --bundle (see "verify install"); checks that
kubelet and runc are nokmem builds; stops the kubelet (--stop-cmd); migrates
kubepods to a fresh non-kmem tree; starts the kubelet (--start-cmd) and waits
until a process runs the new kubelet binary (scanning --proc) and, with
--healthz, until that URL answers 200; runs the cleanup step when there is one;
and asserts slabinfo EIO (with a probe child under kubepods, created and
removed). The report gives the kubelet downtime (stop command issued → kubelet
process running again) and the cleanup time apart, and lists every change it
made ("changed:"; JSON "changed"). On a kernel without 3.10 semantics it
changes nothing and reports "not applicable". A systemd-driver node
(kubepods.slice) is judged by its cgroups: without kmem-active cgroups it
needs nothing ("healthy", exit 0: kubelet and runc activate kmem there only
when a kernel-memory limit is requested); with some, detect fails
naming them, with the options (cgroup.memory=nokmem and a reboot, or
draining and recreating those pods).

When a step fails the run stops there, starts the kubelet again when that is
safe (not on a half-migrated tree), and the report's "next" says what to run.
The run exits 0 when it passed, found the node healthy or not applicable, and
with its step's code when it stopped at a step.

` + exitHelp("run"),
		Args:        cobra.NoArgs,
		Annotations: annotations(mutating, usesRoot),
		RunE: func(cmd *cobra.Command, _ []string) error {
			do, err := df.options(g)
			if err != nil {
				return err
			}
			h := memcg.Hierarchy{Root: g.Root}
			cfg := acceptance.Config{
				Hierarchy: h,
				Detect:    do,
				Service:   acceptance.CommandService{StopCmd: stopCmd, StartCmd: startCmd},
				Migrate:   migrator(g, h, kc.Proc),
				Cleanup:   cleaner(g, h, kc.Proc),
				Kubelet:   &kc,
				Strict:    strict,
				Logger:    g.Logger,
			}
			if inf.r.Bundle != "" {
				r := inf.request(g, do.Binaries, g.Stderr)
				cfg.Install = func() (*install.Record, error) { return installBundle(r, g.StateDir) }
			}
			res := acceptance.Run(cmd.Context(), cfg)
			if junitPath != "" {
				if err := writeRunJUnit(junitPath, res); err != nil {
					return err
				}
			}
			if jsonTo != "" {
				if err := report.WriteJSONFile(jsonTo, res); err != nil {
					return err
				}
			}
			if g.JSON() {
				if err := report.WriteJSON(g.Stdout, res); err != nil {
					return err
				}
			} else {
				printRun(g, res)
			}
			if res.ExitCode != 0 {
				return withExitCode(res.ExitCode, nil)
			}
			return nil
		},
	}
	f := cmd.Flags()
	df.register(f)
	inf.register(f)
	f.StringVar(&stopCmd, "stop-cmd", acceptance.DefaultStopCmd, "shell command that stops the kubelet")
	f.StringVar(&startCmd, "start-cmd", acceptance.DefaultStartCmd, "shell command that starts the kubelet")
	f.StringVar(&junitPath, "junit", "", "write a JUnit XML report to this file")
	f.StringVar(&jsonTo, "report", "", "write the JSON report to this file")
	f.BoolVar(&strict, "strict", false, fmt.Sprintf("fail (exit %d) when the kernel has no 3.10 semantics", acceptance.ExitCodes[acceptance.StepAssert]))
	f.StringVar(&kc.Proc, "proc", "/proc", "process table scanned for the restarted kubelet")
	f.StringVar(&kc.Healthz, "healthz", "", "kubelet healthz URL that must answer 200 after the start (e.g. http://127.0.0.1:10248/healthz)")
	f.DurationVar(&kc.Timeout, "kubelet-timeout", 2*time.Minute, "how long to wait for the kubelet to come back")
	return cmd
}

// writeRunJUnit writes the run's JUnit report, with the kubelet downtime
// and the cleanup time as suite properties.
func writeRunJUnit(path string, res *acceptance.Result) error {
	return report.WriteJUnit(path, "nokmem-acceptance", res.Start, res.Steps,
		report.Property{Name: "kubelet_downtime_seconds", Value: fmt.Sprintf("%.3f", res.DowntimeSeconds)},
		report.Property{Name: "cleanup_seconds", Value: fmt.Sprintf("%.3f", res.CleanupSeconds)})
}

// migrator runs the critical part of the verify/migrate engine (the
// kubelet is stopped: build the fresh tree, move every process, put it at
// kubepods) with the journal in the state dir, so that `verify migrate`
// resumes or rolls back what run left. The old tree is left for cleaner.
func migrator(g *globalOptions, h memcg.Hierarchy, proc string) acceptance.MigrateFunc {
	return func(kubepods string) (string, bool, error) {
		e, err := migrate.New(migrate.Config{Hierarchy: h, Kubepods: kubepods, StateDir: g.StateDir, Proc: proc, Logger: g.Logger})
		if err != nil {
			return "", false, err
		}
		rep, err := e.Critical()
		if err != nil {
			var re *migrate.RunError
			touched := errors.As(err, &re) && re.Touched
			return "", touched, err
		}
		return rep.Message, false, nil
	}
}

// cleaner removes the set-aside old tree of the migration recorded in the
// state dir; the kubelet may run meanwhile. It does nothing when no
// migration waits for its cleanup.
func cleaner(g *globalOptions, h memcg.Hierarchy, proc string) func(ctx context.Context) (string, error) {
	return func(context.Context) (string, error) {
		kp, err := migrate.JournalKubepods(g.StateDir)
		if err != nil || kp == "" {
			return "no migration waits for its cleanup", err
		}
		e, err := migrate.New(migrate.Config{Hierarchy: h, Kubepods: kp, StateDir: g.StateDir, Proc: proc, Logger: g.Logger})
		if err != nil {
			return "", err
		}
		rep, err := e.Cleanup()
		if err != nil {
			return "", err
		}
		return rep.Message, nil
	}
}

func printRun(g *globalOptions, res *acceptance.Result) {
	w := g.Stdout
	for _, s := range res.Steps {
		fmt.Fprintf(w, "%-8s %-14s %s\n", s.Status, s.Name, cmp.Or(s.Message, s.Details))
	}
	fmt.Fprintf(w, "outcome: %s", res.Outcome)
	if res.StoppedAt != "" {
		fmt.Fprintf(w, " (stopped at %s, exit %d)", res.StoppedAt, res.ExitCode)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "kubelet downtime: %s (stop command issued → kubelet running again); cleanup: %s\n",
		res.Downtime.Round(time.Millisecond), res.Cleanup.Round(time.Millisecond))
	if res.HealthzDowntime > 0 || res.Identify > 0 {
		fmt.Fprintf(w, "healthz back after: %s; identifying the restarted kubelet took %s after it was seen (not counted as downtime)\n",
			res.HealthzDowntime.Round(time.Millisecond), res.Identify.Round(time.Millisecond))
	}
	if len(res.Changed) == 0 {
		fmt.Fprintln(w, "changed: nothing")
	}
	for _, c := range res.Changed {
		fmt.Fprintf(w, "changed: %s\n", c)
	}
	if res.Next != "" {
		fmt.Fprintf(w, "next: %s\n", res.Next)
	}
	if res.Install != nil {
		fmt.Fprintf(w, "binaries replaced; undo with: verify install --rollback --state-dir %s (record %s)\n", g.StateDir, install.RecordFile)
	}
}
