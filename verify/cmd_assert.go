package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/nokmem/nokmem/verify/assert"
	"github.com/nokmem/nokmem/verify/memcg"
	"github.com/nokmem/nokmem/verify/report"
)

func init() { subcommands = append(subcommands, newAssertCmd) }

func newAssertCmd(g *globalOptions) *cobra.Command {
	var o assert.Options
	cmd := &cobra.Command{
		Use:         "assert",
		Annotations: annotations(usesRoot),
		Short:       "Prove kmem accounting is off for kubepods (slabinfo EIO on 3.10 kernels)",
		Long: `assert reads memory.kmem.slabinfo of kubepods, every cgroup below it and a probe
child it creates under kubepods and removes again: on a kernel with 3.10
semantics each must fail with EIO. Every offender is listed. On other kernels
the check is "not applicable" (exit 0, or 1 with --strict).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := assert.Check(memcg.Hierarchy{Root: g.Root}, o)
			if err != nil {
				return err
			}
			if g.JSON() {
				if err := report.WriteJSON(g.Stdout, r); err != nil {
					return err
				}
			} else {
				printAssert(g, r)
			}
			if !r.Passed {
				return withExitCode(1, nil)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&o.Kubepods, "kubepods", "", "kubepods cgroup relative to --root (default: kubepods or kubepods.slice, whichever exists)")
	cmd.Flags().BoolVar(&o.Strict, "strict", false, "fail when the check is not applicable")
	return cmd
}

func printAssert(g *globalOptions, r *assert.Result) {
	w := g.Stderr
	switch {
	case !r.Applicable:
		fmt.Fprintln(w, r.Reason)
		if !r.Passed {
			fmt.Fprintln(w, "FAIL (--strict)")
		}
	case r.Passed:
		fmt.Fprintf(w, "PASS: memory.kmem.slabinfo fails with EIO in all %d cgroups of %s (probe child included)\n", r.Checked, g.Root+"/"+r.Kubepods)
	default:
		fmt.Fprintf(w, "FAIL: kmem accounting is on in %d of %d cgroups:\n", len(r.Offenders), r.Checked)
		for _, o := range r.Offenders {
			probe := ""
			if o.Probe {
				probe = " (probe child: new pods would be kmem-active)"
			}
			fmt.Fprintf(w, "  %s reads %s%s\n", o.Path, o.Slabinfo, probe)
		}
	}
}
