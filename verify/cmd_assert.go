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
		Annotations: annotations(usesRoot, map[string]string{privilegedFlagsAnnotation: "probe"}),
		Short:       "Prove kmem accounting is off for kubepods (slabinfo EIO on 3.10 kernels)",
		Long: `assert reads memory.kmem.slabinfo of kubepods and every cgroup below it: on a
kernel with 3.10 semantics each must fail with EIO. Every offender is listed.
It only reads: the kernel's semantics come from the kernel release and the
memory root's own slabinfo. --probe (root only) also creates a child under
the kubepods it checks, reads its slabinfo (what a new pod cgroup inherits)
and removes it again. On other kernels the check is "not applicable" (exit 0,
or 1 with --strict); when the semantics cannot be decided it fails (exit 1).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Probe {
				fmt.Fprintf(g.Stderr, "verify assert --probe: creating a probe child under %s, then removing it\n", g.Root+"/"+kubepodsOrDefault(o.Kubepods))
			}
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
				return withExitCode(exitProblem, nil)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&o.Kubepods, "kubepods", "", "kubepods cgroup relative to --root (default: kubepods or kubepods.slice, whichever exists)")
	cmd.Flags().BoolVar(&o.Strict, "strict", false, "fail when the check is not applicable")
	cmd.Flags().StringVar(&o.OSRelease, "os-release", memcg.DefaultOSRelease, "file holding the kernel release")
	cmd.Flags().BoolVar(&o.Probe, "probe", false, "also create a child under the kubepods checked, read its slabinfo (what new pods inherit) and remove it (needs root)")
	return cmd
}

func printAssert(g *globalOptions, r *assert.Result) {
	w := g.Stdout
	switch {
	case !r.Applicable:
		fmt.Fprintln(w, r.Reason)
		if !r.Passed {
			fmt.Fprintln(w, "FAIL (--strict)")
		}
	case r.Passed:
		probe := " (no probe child: --probe checks what new pods inherit)"
		if r.Probe != "" {
			probe = " (probe child " + r.Probe + " included, created and removed)"
		}
		fmt.Fprintf(w, "PASS: memory.kmem.slabinfo fails with EIO in all %d cgroups of %s%s\n", r.Checked, g.Root+"/"+r.Kubepods, probe)
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

func kubepodsOrDefault(kp string) string {
	if kp == "" {
		return "kubepods (or kubepods.slice)"
	}
	return kp
}
