package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/nokmem/nokmem/verify/install"
	"github.com/nokmem/nokmem/verify/report"
)

func init() { subcommands = append(subcommands, newGCCmd) }

func newGCCmd(g *globalOptions) *cobra.Command {
	var (
		tmpDirs []string
		dryRun  bool
	)
	cmd := &cobra.Command{
		Use:   "gc [--tmp-dir DIR] [--dry-run]",
		Short: "Remove what killed runs left and the backups no install needs; report the disk kept",
		Long: `gc removes the temporary files (.nokmem-tmp-<pid>-…) of verify runs that were
killed from the state directory, the directories of the installed binaries and
each --tmp-dir; and frees the backups no record needs. It keeps the originals
of the current install (the rollback target), the backups and record of the
last rolled-back install, and every backup an abandoned record names.
--dry-run only reports.`,
		Args:        cobra.NoArgs,
		Annotations: annotations(mutating),
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, err := install.GC(g.StateDir, tmpDirs, dryRun)
			if err != nil {
				return err
			}
			if g.JSON() {
				return report.WriteJSON(g.Stdout, res)
			}
			verb := "removed"
			if dryRun {
				verb = "would remove"
			}
			for _, p := range res.Swept {
				fmt.Fprintf(g.Stdout, "%s %s (left by a killed run)\n", verb, p)
			}
			for _, p := range res.Freed {
				fmt.Fprintf(g.Stdout, "%s %s (no record needs it)\n", verb, p)
			}
			fmt.Fprintf(g.Stdout, "freed %d bytes; backups kept: %d files, %d bytes\n", res.FreedBytes, len(res.Kept), res.KeptBytes)
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&tmpDirs, "tmp-dir", []string{os.TempDir()}, "also sweep this folder (where install unpacks a bundle tarball); repeatable")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "report only; remove nothing")
	return cmd
}
