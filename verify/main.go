// Command verify is the nokmem node tool: it detects a node's kernel-memory
// accounting state, installs the nokmem kubelet and runc artifacts, migrates the
// kubepods memory cgroup tree to a fresh non-kmem tree, and asserts the result.
//
// Subcommand registration: every verify/cmd_*.go file appends a constructor to
// subcommands in its init function, for example
//
//	func init() { subcommands = append(subcommands, newMigrateCmd) }
//
// The constructor receives the shared *globalOptions (already bound to the
// persistent flags --root, --state-dir, -o and --log-level) and returns its
// *cobra.Command. newRootCmd adds them all, so no file needs to edit main.go.
//
// A command file only binds flags to the options value of the package it
// calls, calls it and prints: the flags several commands share are bound in
// flags.go, the advice that names flags is added to library errors in
// hints.go, and every exit status is in exitcodes.go.
//
// Node safety is central (see guard.go): a command annotated
// mutatesAnnotation takes the node lock (verify/nodelock) and needs root; a
// command annotated rootAnnotation checks that --root is a cgroup v1 memory
// hierarchy; both happen in PersistentPreRunE, before the command writes
// anything.
package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/nokmem/nokmem/verify/memcg"
	"github.com/nokmem/nokmem/verify/nodelock"
	"github.com/nokmem/nokmem/verify/report"
)

// DefaultStateDir is where verify keeps its records (--state-dir).
const DefaultStateDir = "/var/lib/nokmem"

// globalOptions holds the persistent flags shared by every subcommand.
type globalOptions struct {
	// Root is the cgroup v1 memory hierarchy mount point.
	Root string
	// StateDir keeps backups and records of what verify changed.
	StateDir string
	// Output is "text" or "json".
	Output string
	// LogLevel is the slog level name (debug, info, warn, error).
	LogLevel string
	// LockDir holds the node lock (verify/nodelock).
	LockDir string

	// Stdout receives what a command reports, human or JSON (as kubectl
	// and runc do, so that `verify detect | grep` works); Stderr
	// diagnostics: logs, warnings, errors.
	Stdout io.Writer
	Stderr io.Writer
	// Logger is set up from LogLevel before any subcommand runs.
	Logger *slog.Logger

	// lock is the node lock a changing command holds until run returns.
	lock interface{ Release() error }
}

// JSON reports whether machine output was asked for.
func (g *globalOptions) JSON() bool { return g.Output == "json" }

// subcommands are the constructors registered by the cmd_*.go files' init functions.
var subcommands []func(*globalOptions) *cobra.Command

// exitError carries a specific process exit code (for example the
// node-problem-detector codes) through cobra's error return.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// withExitCode wraps err so that main exits with code instead of 1. A nil err
// with a non-zero code exits silently with that code.
func withExitCode(code int, err error) error { return &exitError{code: code, err: err} }

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root, _ := newRoot(stdout, stderr)
	return root
}

func newRoot(stdout, stderr io.Writer) (*cobra.Command, *globalOptions) {
	g := &globalOptions{Stdout: stdout, Stderr: stderr}
	root := &cobra.Command{
		Use:   "verify",
		Short: "Detect, install, repair and assert the nokmem state of a node",
		Long: `verify detects, installs, repairs and asserts the nokmem state of a node.
Reports go to stdout (-o json: exactly one JSON object, errors included),
logs and errors to stderr. Exit statuses: verify exit-codes (a usage error
exits 64).`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			// Flag groups before anything else (cobra checks them only
			// after this hook, once the node lock is held).
			if err := cmd.ValidateFlagGroups(); err != nil {
				return usageError(cmd, err)
			}
			if err := checkConflicts(cmd); err != nil {
				return usageError(cmd, err)
			}
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(g.LogLevel)); err != nil {
				return usageError(cmd, fmt.Errorf("--log-level %q: %w", g.LogLevel, err))
			}
			if g.Output != "text" && g.Output != "json" {
				return usageError(cmd, fmt.Errorf("-o %q: want text or json", g.Output))
			}
			g.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
			slog.SetDefault(g.Logger)
			return guard(g, cmd)
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.Version = version
	root.SetVersionTemplate(versionText())
	pf := root.PersistentFlags()
	pf.StringVar(&g.Root, "root", memcg.DefaultRoot, "cgroup v1 memory hierarchy mount point")
	pf.StringVar(&g.StateDir, "state-dir", DefaultStateDir, "directory for backups and records of changes")
	pf.StringVarP(&g.Output, "output", "o", "text", "output format: text or json")
	pf.StringVar(&g.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	pf.StringVar(&g.LockDir, "lock-dir", nodelock.Dir(), "directory of the node lock that commands changing the node hold (default from $"+nodelock.DirEnv+" when set)")
	for _, mk := range subcommands {
		root.AddCommand(mk(g))
	}
	root.SetFlagErrorFunc(usageError)
	for _, c := range root.Commands() {
		if c.Args != nil {
			args := c.Args
			c.Args = func(cmd *cobra.Command, a []string) error {
				if err := args(cmd, a); err != nil {
					return usageError(cmd, err)
				}
				return nil
			}
		}
	}
	return root, g
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line and returns the process exit code. An
// error is said on stderr; with -o json the command's one JSON object on
// stdout is then {"error": …, "exit_code": …}, unless the command wrote its
// own; with detect --npd it is the plugin's one line.
func run(args []string, stdout, stderr io.Writer) int {
	out := &countingWriter{w: stdout}
	root, g := newRoot(out, stderr)
	root.SetArgs(args)
	// Execute adds these itself; Find must know them too.
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd(args...)
	var err error
	if cmd, _, ferr := root.Find(args); ferr != nil {
		err = usageError(cmd, ferr)
	} else {
		err = root.Execute()
	}
	if g.lock != nil {
		if rerr := g.lock.Release(); rerr != nil && err == nil {
			err = rerr
		}
	}
	if err == nil {
		return exitOK
	}
	err = explain(err, g.StateDir)
	code := exitProblem
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
		if ee.err == nil {
			return code
		}
	}
	fmt.Fprintf(stderr, "verify: %v\n", err)
	if out.n > 0 {
		return code
	}
	switch {
	case wantsNPD(root, args):
		report.WriteNPD(out, "unknown: "+err.Error())
	case g.JSON() || wantsJSON(args):
		report.WriteJSON(out, errorReport{Error: err.Error(), ExitCode: code, ExitName: exitName(code)})
	}
	return code
}

// errorReport is the one JSON object of a failed command with -o json.
type errorReport struct {
	Error    string `json:"error"`
	ExitCode int    `json:"exit_code"`
	ExitName string `json:"exit_name"`
}

func exitName(code int) string {
	for _, c := range exitCodeTable() {
		if c.Code == code {
			return c.Name
		}
	}
	return ""
}

// usageError marks err as a usage error (exit status exitUsage).
func usageError(cmd *cobra.Command, err error) error {
	var ee *exitError
	if errors.As(err, &ee) {
		return err
	}
	where := "verify --help"
	if cmd != nil {
		where = cmd.CommandPath() + " --help"
	}
	return withExitCode(exitUsage, fmt.Errorf("usage: %w (see %s)", err, where))
}

// wantsJSON reports whether args ask for -o json, for a command line that
// failed before its flags were parsed.
func wantsJSON(args []string) bool {
	for i, a := range args {
		switch {
		case a == "--":
			return false
		case a == "-ojson", a == "-o=json", a == "--output=json":
			return true
		case (a == "-o" || a == "--output") && i+1 < len(args) && args[i+1] == "json":
			return true
		}
	}
	return false
}

// wantsNPD reports whether args run a command in node-problem-detector
// mode (--npd), which answers every failure with its one line.
func wantsNPD(root *cobra.Command, args []string) bool {
	cmd, _, err := root.Find(args)
	if err != nil || cmd.Flags().Lookup("npd") == nil {
		return false
	}
	if f := cmd.Flags().Lookup("npd"); f.Changed {
		return f.Value.String() == "true"
	}
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "--npd" || a == "--npd=true" {
			return true
		}
	}
	return false
}

// countingWriter counts what a command wrote to stdout.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
