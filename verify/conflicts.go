package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// flagRule is a pair of flags of one command that make no sense together
// (excludes), or a flag that means nothing without another (needs). A flag
// written name=value counts only when set to that value (output=json).
type flagRule struct {
	command string
	flag    string
	needs   string
	excl    []string
	why     string
}

// flagRules are checked before a command runs (guard has not run yet, so
// a refused command line changes nothing). A rule whose flags a command
// does not have is skipped.
var flagRules = []flagRule{
	{command: "verify install", flag: "rollback", excl: []string{"bundle", "pubkey", "insecure-skip-signature", "create", "tmp-dir", "allow-symlink", "allow-unknown", "allow-version-change"},
		why: "--rollback restores the backed-up binaries; it installs no bundle"},
	{command: "verify install", flag: "insecure-skip-signature", excl: []string{"pubkey"}, why: "the signature is either checked with --pubkey or skipped"},
	{command: "verify run", flag: "insecure-skip-signature", excl: []string{"pubkey"}, why: "the signature is either checked with --pubkey or skipped"},
	{command: "verify run", flag: "pubkey", needs: "bundle", why: "only a --bundle is checked against a key"},
	{command: "verify run", flag: "insecure-skip-signature", needs: "bundle", why: "only a --bundle has a signature"},
	{command: "verify run", flag: "tmp-dir", needs: "bundle", why: "only a --bundle tarball is unpacked"},
	{command: "verify run", flag: "create", needs: "bundle", why: "only a --bundle installs binaries"},
	{command: "verify detect", flag: "npd", excl: []string{"output=json", "textfile"}, why: "--npd writes only the node-problem-detector line"},
	{command: "verify migrate", flag: "no-cleanup", excl: []string{"rollback", "abandon", "dry-run"}, why: "--no-cleanup applies to a migration"},
}

// checkConflicts refuses a command line that sets flags which make no sense together.
func checkConflicts(cmd *cobra.Command) error {
	for _, r := range flagRules {
		if r.command != cmd.CommandPath() || !flagSet(cmd, r.flag) {
			continue
		}
		if r.needs != "" && flagExists(cmd, r.needs) && !flagSet(cmd, r.needs) {
			return fmt.Errorf("--%s needs --%s: %s", r.flag, r.needs, r.why)
		}
		var bad []string
		for _, x := range r.excl {
			if flagSet(cmd, x) {
				bad = append(bad, "--"+x)
			}
		}
		if len(bad) > 0 {
			return fmt.Errorf("--%s cannot be combined with %s: %s", r.flag, strings.Join(bad, ", "), r.why)
		}
	}
	return nil
}

func lookup(cmd *cobra.Command, name string) *pflag.Flag {
	name, _, _ = strings.Cut(name, "=")
	return cmd.Flags().Lookup(name)
}

func flagExists(cmd *cobra.Command, name string) bool { return lookup(cmd, name) != nil }

// flagSet reports whether the flag was given (with the value after "=",
// when the rule names one; a boolean given as false counts as not set).
func flagSet(cmd *cobra.Command, name string) bool {
	f := lookup(cmd, name)
	if f == nil || !f.Changed {
		return false
	}
	if _, v, ok := strings.Cut(name, "="); ok {
		return f.Value.String() == v
	}
	return f.Value.Type() != "bool" || f.Value.String() == "true"
}
