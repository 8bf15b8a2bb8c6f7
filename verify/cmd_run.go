package main

import (
	"errors"
	"fmt"

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
	)
	cmd := &cobra.Command{
		Use:         "run",
		Annotations: annotations(mutating, usesRoot),
		Short:       "Staging acceptance: detect, install, stop kubelet, migrate, start kubelet, assert",
		Long: `run is the staging acceptance flow. It detects the node state; installs the
release given by --artifacts (optional); checks that kubelet and runc are nokmem
builds; stops the kubelet (--stop-cmd); migrates kubepods to a fresh non-kmem
tree; starts the kubelet (--start-cmd); and asserts slabinfo EIO. On a kernel
without 3.10 semantics it changes nothing and reports "not applicable".

When a step fails the run stops there, starts the kubelet again when that is
safe (not on a half-migrated tree), and the report's "next" says what to run.
Exit codes: 0 passed or not applicable; 10 detect, 11 install, 12 binaries,
13 stop-kubelet, 14 migrate, 15 start-kubelet, 16 assert.`,
		Args: cobra.NoArgs,
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
				Migrate:   migrator(g, h),
				Strict:    strict,
				Logger:    g.Logger,
			}
			if inf.artifacts != "" {
				io, err := inf.options(g, do.Binaries)
				if err != nil {
					return err
				}
				cfg.Install = &io
			}
			res := acceptance.Run(cmd.Context(), cfg)
			if junitPath != "" {
				if err := report.WriteJUnit(junitPath, "nokmem-acceptance", res.Start, res.Steps); err != nil {
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
	f.BoolVar(&strict, "strict", false, "fail (exit 16) when the kernel has no 3.10 semantics")
	return cmd
}

// migrator runs the verify/migrate engine with the journal in the state dir,
// so that `verify migrate` resumes or rolls back what run left.
func migrator(g *globalOptions, h memcg.Hierarchy) acceptance.MigrateFunc {
	return func(kubepods string) (string, bool, error) {
		e, err := migrate.New(migrate.Config{Hierarchy: h, Kubepods: kubepods, StateDir: g.StateDir, Logger: g.Logger})
		if err != nil {
			return "", false, err
		}
		rep, err := e.Migrate()
		if err != nil {
			var re *migrate.RunError
			touched := errors.As(err, &re) && re.Touched
			return "", touched, err
		}
		return rep.Message, false, nil
	}
}

func printRun(g *globalOptions, res *acceptance.Result) {
	w := g.Stderr
	for _, s := range res.Steps {
		fmt.Fprintf(w, "%-8s %-14s %s\n", s.Status, s.Name, firstNonEmpty(s.Message, s.Details))
	}
	fmt.Fprintf(w, "outcome: %s", res.Outcome)
	if res.StoppedAt != "" {
		fmt.Fprintf(w, " (stopped at %s, exit %d)", res.StoppedAt, res.ExitCode)
	}
	fmt.Fprintln(w)
	if res.Next != "" {
		fmt.Fprintf(w, "next: %s\n", res.Next)
	}
	if res.Install != nil {
		fmt.Fprintf(w, "binaries replaced; undo with: verify rollback --state-dir %s (record %s)\n", g.StateDir, install.RecordFile)
	}
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}
