package main

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/nokmem/nokmem/verify/report"
)

// Set by the build (internal/verifybuild) with -X; a plain `go build`
// leaves the defaults.
var (
	version    = "devel"
	commit     = "unknown"
	fromBundle = "none"
)

func init() { subcommands = append(subcommands, newVersionCmd) }

// VersionInfo is what `verify version -o json` prints.
type VersionInfo struct {
	Version string `json:"version"`
	Commit  string `json:"commit"`
	Go      string `json:"go"`
	Bundle  string `json:"bundle"`
}

func versionInfo() VersionInfo {
	return VersionInfo{Version: version, Commit: commit, Go: runtime.Version(), Bundle: fromBundle}
}

// versionText is the one line `verify version` and `verify --version` print.
func versionText() string {
	v := versionInfo()
	return fmt.Sprintf("verify %s (commit %s, %s, bundle %s)\n", v.Version, v.Commit, v.Go, v.Bundle)
}

func newVersionCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print verify's version, source commit, Go version and the bundle it came from",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if g.JSON() {
				return report.WriteJSON(g.Stdout, versionInfo())
			}
			_, err := fmt.Fprint(g.Stdout, versionText())
			return err
		},
	}
}
