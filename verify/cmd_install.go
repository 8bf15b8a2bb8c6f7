package main

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"

	"github.com/spf13/cobra"

	"github.com/nokmem/nokmem/verify/binary"
	"github.com/nokmem/nokmem/verify/install"
	"github.com/nokmem/nokmem/verify/report"
)

func init() { subcommands = append(subcommands, newInstallCmd, newRollbackCmd) }

func newInstallCmd(g *globalOptions) *cobra.Command {
	var (
		bf       binaryFlags
		f        installFlags
		rollback bool
		abandon  bool
	)
	cmd := &cobra.Command{
		Use:   "install --bundle DIR|TARBALL [--pubkey KEY] | install --rollback",
		Short: "Install the kubelet and runc of a signed nokmem bundle in one transaction (or roll back)",
		Long: `install checks the bundle's signature (--pubkey, default ` + install.DefaultPubKey + `),
checksums, manifest, SBOMs and provenance before touching anything; refuses a
non-root user, an unwritable directory or a full disk before writing; copies
every binary it replaces into --state-dir; then replaces each one atomically as
0755 root:root. Either every binary the node has (kubelet, runc, docker-runc)
is replaced, or none is. A binary the node lacks is created only with --create.
Installing over an earlier install is an upgrade; the first install's backups
stay the rollback target.

Every target, on a first install and on an upgrade, is planned the same way:
replaced; kept (it already holds a nokmem build, or a stock version that does
not activate kmem: said why, --allow-version-change replaces it); or refused
with the reason and the flag that overrides (an unknown binary:
--allow-unknown; a kubelet of another minor release or a runc newer than the
bundle's: --allow-version-change; a binary with fewer known vulnerabilities
than the bundle's: --allow-security-downgrade; a change by someone else:
--force). A refusal changes nothing. A symlink such as docker-runc → runc is
one file, installed once through runc; the link is kept.

Temporary files are named .nokmem-tmp-<pid>-… and swept by the next install,
rollback or verify gc. Backups kept: the originals (the rollback target) and
those of the last rolled-back install; verify gc frees the rest.

install --abandon sets an install record aside (for one that cannot be
trusted, which install and rollback refuse), changes nothing else, and
lists the binaries the node has now.

install --rollback (alias: verify rollback) restores the original binaries
byte for byte with their mode and owner, unless one was changed by someone
else since (then it names the file and both digests, and --force overrides).`,
		Args:        cobra.NoArgs,
		Annotations: annotations(mutating),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if rollback && abandon {
				return errors.New("--rollback and --abandon exclude each other")
			}
			if rollback {
				return runRollback(g, f.r.Force)
			}
			bo, err := bf.options()
			if err != nil {
				return err
			}
			if abandon {
				return runAbandon(g, bo)
			}
			if f.r.Bundle == "" {
				return errors.New("--bundle is required")
			}
			rec, err := installBundle(f.request(g, bo, g.Stderr), g.StateDir)
			if err != nil {
				return err
			}
			if g.JSON() {
				return report.WriteJSON(g.Stdout, rec)
			}
			printInstall(g.Stderr, g.StateDir, rec)
			return nil
		},
	}
	bf.register(cmd.Flags())
	f.register(cmd.Flags())
	cmd.Flags().BoolVar(&rollback, "rollback", false, "restore the binaries from before the first install")
	cmd.Flags().BoolVar(&abandon, "abandon", false, "set the install record aside (changes nothing else) and list what is installed")
	return cmd
}

// runAbandon sets the install record aside and says what the node runs now.
func runAbandon(g *globalOptions, bo binary.Options) error {
	res, err := install.Abandon(g.StateDir)
	if err != nil {
		return err
	}
	bins, err := binary.Find(bo)
	if err != nil {
		return err
	}
	if g.JSON() {
		return report.WriteJSON(g.Stdout, struct {
			*install.AbandonResult
			Binaries []binary.Binary `json:"binaries"`
		}{res, bins})
	}
	fmt.Fprintln(g.Stdout, res.Message)
	fmt.Fprintln(g.Stdout, "installed now:")
	for _, b := range bins {
		fmt.Fprintf(g.Stdout, "  %s %s: %s (%s), sha256 %s\n", b.Name, b.Path, b.Kind, b.Reason, b.SHA256)
	}
	if len(bins) == 0 {
		fmt.Fprintln(g.Stdout, "  no kubelet, runc or docker-runc found")
	}
	return nil
}

func printInstall(w io.Writer, stateDir string, rec *install.Record) {
	for _, d := range rec.Kept {
		fmt.Fprintf(w, "kept %s: %s\n", d.Path, d.Reason)
	}
	if len(rec.Replaced) == 0 {
		fmt.Fprintln(w, "nothing to replace: the node and the install record are unchanged")
		return
	}
	for _, e := range rec.Entries {
		if !slices.Contains(rec.Replaced, e.Installed) {
			continue
		}
		fmt.Fprintf(w, "installed %s → %s (sha256 %s; original %s, backup %s)\n", e.Name, e.Installed, e.NewSHA256, cmp.Or(e.Original.SHA256, "none"), cmp.Or(e.Backup, "none"))
		for _, n := range e.Notes {
			fmt.Fprintf(w, "  note: %s: %s\n", e.Installed, n)
		}
	}
	fmt.Fprintf(w, "bundle %s (signature checked: %v); record %s; undo with: verify install --rollback --state-dir %s\n",
		rec.Bundle.Name, rec.Signed, filepath.Join(stateDir, install.RecordFile), stateDir)
}

func newRollbackCmd(g *globalOptions) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:         "rollback",
		Short:       "Alias of install --rollback: restore the binaries from before the first install",
		Args:        cobra.NoArgs,
		Annotations: annotations(mutating),
		RunE:        func(cmd *cobra.Command, _ []string) error { return runRollback(g, force) },
	}
	cmd.Flags().BoolVar(&force, "force", false, "restore even over a binary someone changed since verify installed it")
	return cmd
}

func runRollback(g *globalOptions, force bool) error {
	res, err := install.Rollback(g.StateDir, force)
	if err != nil {
		return err
	}
	if g.JSON() {
		return report.WriteJSON(g.Stdout, res)
	}
	for _, a := range res.Actions {
		fmt.Fprintln(g.Stderr, a)
	}
	fmt.Fprintln(g.Stderr, res.Message)
	return nil
}
