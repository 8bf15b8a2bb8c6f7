package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/nokmem/nokmem/verify/memcg"
	"github.com/nokmem/nokmem/verify/nodelock"
	"github.com/nokmem/nokmem/verify/report"
)

// Command annotations read by guard.
const (
	// mutatesAnnotation: {"nokmem.mutates": "node"} marks a command that
	// changes the node (install, rollback, migrate, run). It runs only as
	// root and holds the node lock for its whole run. A --dry-run set to
	// true makes it read-only.
	mutatesAnnotation = "nokmem.mutates"
	mutatesNode       = "node"
	// rootAnnotation: {"nokmem.root": "memory"} marks a command that works
	// on the --root memory hierarchy: --root is checked first, and when the
	// command mutates, the lock also covers that hierarchy.
	rootAnnotation = "nokmem.root"
	rootMemory     = "memory"
	// privilegedFlagsAnnotation lists (comma-separated) flags that make an
	// otherwise read-only command write: set to a non-zero value, they need
	// root (detect --probe-ids, --probe-slabinfo).
	privilegedFlagsAnnotation = "nokmem.privileged-flags"
	// unknownExitAnnotation is the exit code of a refusal by guard (detect:
	// 2, "unknown"); with --npd the refusal is also the plugin's one line.
	unknownExitAnnotation = "nokmem.unknown-exit"
)

// mutating marks a command as one that changes the node.
var mutating = map[string]string{mutatesAnnotation: mutatesNode}

// annotations merges annotation maps.
func annotations(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// usesRoot marks a command that works on the --root memory hierarchy.
var usesRoot = map[string]string{rootAnnotation: rootMemory}

// mutates reports whether this invocation of cmd changes the node.
func mutates(cmd *cobra.Command) bool {
	if cmd.Annotations[mutatesAnnotation] != mutatesNode {
		return false
	}
	if f := cmd.Flags().Lookup("dry-run"); f != nil && f.Value.String() == "true" {
		return false
	}
	return true
}

// privilegedFlags returns the flags of this invocation that need root.
func privilegedFlags(cmd *cobra.Command) []string {
	var out []string
	for _, name := range strings.Split(cmd.Annotations[privilegedFlagsAnnotation], ",") {
		f := cmd.Flags().Lookup(name)
		if f == nil || !f.Changed || isZero(f) {
			continue
		}
		out = append(out, "--"+name)
	}
	return out
}

func isZero(f *pflag.Flag) bool {
	switch f.Value.String() {
	case "", "0", "false":
		return true
	}
	return false
}

// guard runs before every subcommand and before it writes anything:
// privileges first (a refused run creates nothing, not even the lock
// directory), then the --root check, then the node lock.
func guard(g *globalOptions, cmd *cobra.Command) error {
	err := checkNode(g, cmd)
	if err == nil {
		return nil
	}
	code, cerr := strconv.Atoi(cmd.Annotations[unknownExitAnnotation])
	if cerr != nil {
		return err
	}
	if f := cmd.Flags().Lookup("npd"); f != nil && f.Value.String() == "true" {
		msg := err.Error()
		if errors.Is(err, memcg.ErrNotMemoryRoot) {
			// The one line is cut at 80 characters: the verdict first.
			msg = "not a cgroup v1 memory root: --root " + g.Root
		}
		if werr := report.WriteNPD(g.Stdout, "unknown: "+msg); werr != nil {
			return werr
		}
		return withExitCode(code, nil)
	}
	return withExitCode(code, err)
}

func checkNode(g *globalOptions, cmd *cobra.Command) error {
	name := cmd.CommandPath()
	mut := mutates(cmd)
	if uid := os.Geteuid(); uid != 0 {
		if mut {
			return fmt.Errorf("%s changes the node and must run as root (effective uid 0, this is uid %d): refused before anything was written", name, uid)
		}
		if pf := privilegedFlags(cmd); len(pf) > 0 {
			return fmt.Errorf("%s %s creates cgroups under %s and must run as root (effective uid 0, this is uid %d): refused before anything was written", name, strings.Join(pf, " "), g.Root, uid)
		}
	}
	root := cmd.Annotations[rootAnnotation] == rootMemory
	if root {
		if err := (memcg.Hierarchy{Root: g.Root}).CheckRoot(""); err != nil {
			return fmt.Errorf("--root %w", err)
		}
	}
	if !mut {
		return nil
	}
	lockRoot := ""
	if root {
		lockRoot = g.Root
	}
	l, err := nodelock.Acquire(g.LockDir, lockRoot, nodelock.Self())
	if err != nil {
		return err
	}
	g.lock = l
	return nil
}
