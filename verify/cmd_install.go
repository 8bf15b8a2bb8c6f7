package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/nokmem/nokmem/verify/detect"
	"github.com/nokmem/nokmem/verify/install"
	"github.com/nokmem/nokmem/verify/report"
)

func init() { subcommands = append(subcommands, newInstallCmd, newRollbackCmd) }

// installFlags are the inputs of install (install and run).
type installFlags struct {
	artifacts, pubKey          string
	allowSymlink, allowUnknown bool
}

func (f *installFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.artifacts, "artifacts", "", "release directory with kubelet and/or runc, SHA256SUMS, SHA512SUMS (and SHA256SUMS.minisig)")
	fs.StringVar(&f.pubKey, "pubkey", "", "minisign public key: verify the release signature, SBOM and provenance too")
	fs.BoolVar(&f.allowSymlink, "allow-symlink", false, "install through a symlinked target (replaces the file it points at)")
	fs.BoolVar(&f.allowUnknown, "allow-unknown", false, "replace a binary whose version output is not recognised")
}

// options maps the release's artifacts to the node's binaries: kubelet →
// the kubelet found (or /usr/bin/kubelet); runc → runc and, when present,
// docker-runc.
func (f *installFlags) options(g *globalOptions, bo detect.BinaryOptions) (install.Options, error) {
	o := install.Options{Artifacts: f.artifacts, PubKey: f.pubKey, StateDir: g.StateDir, AllowSymlink: f.allowSymlink, AllowUnknown: f.allowUnknown, Binaries: bo, Logger: g.Logger}
	if f.artifacts == "" {
		return o, errors.New("--artifacts is required")
	}
	dirs := bo.SearchDirs
	if dirs == nil {
		dirs = detect.DefaultSearchDirs
	}
	for _, m := range []struct {
		artifact, node string
		required       bool
	}{{"kubelet", "kubelet", true}, {"runc", "runc", true}, {"runc", "docker-runc", false}} {
		if _, err := os.Stat(filepath.Join(f.artifacts, m.artifact)); errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return o, fmt.Errorf("artifacts: %w", err)
		}
		p := bo.Paths[m.node]
		if p == "" {
			p = detect.Search(m.node, dirs)
		}
		if p == "" && m.required {
			p = filepath.Join("/usr/bin", m.node)
		}
		if p != "" {
			o.Targets = append(o.Targets, install.Target{Name: m.artifact, Path: p})
		}
	}
	if len(o.Targets) == 0 {
		return o, fmt.Errorf("artifacts %s hold neither kubelet nor runc", f.artifacts)
	}
	return o, nil
}

func newInstallCmd(g *globalOptions) *cobra.Command {
	var (
		bf binaryFlags
		f  installFlags
	)
	cmd := &cobra.Command{
		Use:         "install --artifacts DIR [--pubkey KEY]",
		Annotations: annotations(mutating),
		Short:       "Install the nokmem kubelet and runc from a verified release directory",
		Long: `install checks the release (SHA256SUMS and SHA512SUMS; with --pubkey also the
minisign signature, SBOM and provenance) before touching anything, backs up the
current binaries with their sha256 into --state-dir, and replaces each one
atomically (temp file in the same directory, fsync, rename; mode and owner kept).
It refuses symlinked or non-regular targets and binaries it cannot identify
unless told otherwise. "verify rollback" undoes it byte for byte.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bo, err := bf.options()
			if err != nil {
				return err
			}
			o, err := f.options(g, bo)
			if err != nil {
				return err
			}
			rec, err := install.Install(o)
			if err != nil {
				return err
			}
			if g.JSON() {
				return report.WriteJSON(g.Stdout, rec)
			}
			for _, e := range rec.Entries {
				fmt.Fprintf(g.Stderr, "installed %s → %s (sha256 %s, was %s, backup %s)\n", e.Name, e.Installed, e.NewSHA256, orNone(e.OldSHA256), orNone(e.Backup))
			}
			fmt.Fprintf(g.Stderr, "record: %s; undo with: verify rollback --state-dir %s\n", filepath.Join(g.StateDir, install.RecordFile), g.StateDir)
			return nil
		},
	}
	bf.register(cmd.Flags())
	f.register(cmd.Flags())
	return cmd
}

func newRollbackCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:         "rollback",
		Annotations: annotations(mutating),
		Short:       "Restore the binaries the last install replaced, byte for byte",
		Args:        cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rec, err := install.Rollback(g.StateDir)
			if err != nil {
				return err
			}
			if g.JSON() {
				return report.WriteJSON(g.Stdout, rec)
			}
			for _, e := range rec.Entries {
				if e.Existed {
					fmt.Fprintf(g.Stderr, "restored %s (sha256 %s)\n", e.Installed, e.OldSHA256)
				} else {
					fmt.Fprintf(g.Stderr, "removed %s (there was none before)\n", e.Installed)
				}
			}
			return nil
		},
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
