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

	"github.com/nokmem/nokmem/verify/nodelock"
)

// Defaults for the persistent flags.
const (
	DefaultMemoryRoot = "/sys/fs/cgroup/memory"
	DefaultStateDir   = "/var/lib/nokmem"
)

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

	// Stdout receives machine output (JSON); Stderr human output and logs.
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
		Use:           "verify",
		Short:         "Detect, install, repair and assert the nokmem state of a node",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(g.LogLevel)); err != nil {
				return fmt.Errorf("--log-level %q: %w", g.LogLevel, err)
			}
			if g.Output != "text" && g.Output != "json" {
				return fmt.Errorf("-o %q: want text or json", g.Output)
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
	pf.StringVar(&g.Root, "root", DefaultMemoryRoot, "cgroup v1 memory hierarchy mount point")
	pf.StringVar(&g.StateDir, "state-dir", DefaultStateDir, "directory for backups and records of changes")
	pf.StringVarP(&g.Output, "output", "o", "text", "output format: text or json")
	pf.StringVar(&g.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	pf.StringVar(&g.LockDir, "lock-dir", nodelock.Dir(), "directory of the node lock that commands changing the node hold (default from $"+nodelock.DirEnv+" when set)")
	for _, mk := range subcommands {
		root.AddCommand(mk(g))
	}
	return root, g
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line and returns the process exit code.
func run(args []string, stdout, stderr io.Writer) int {
	root, g := newRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.Execute()
	if g.lock != nil {
		if rerr := g.lock.Release(); rerr != nil && err == nil {
			err = rerr
		}
	}
	if err == nil {
		return 0
	}
	code := 1
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
		if ee.err == nil {
			return code
		}
	}
	fmt.Fprintf(stderr, "verify: %v\n", err)
	return code
}
