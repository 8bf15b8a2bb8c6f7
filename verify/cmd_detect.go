package main

import (
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/nokmem/nokmem/verify/detect"
	"github.com/nokmem/nokmem/verify/report"
)

func init() { subcommands = append(subcommands, newDetectCmd) }

func newDetectCmd(g *globalOptions) *cobra.Command {
	var (
		df       detectFlags
		textfile string
		npd      bool
	)
	cmd := &cobra.Command{
		Use:   "detect",
		Short: "Report the node's kmem accounting state, leaked memcg IDs and kubelet/runc builds",
		Long: `detect reads the node and writes nothing (unless a probe flag asks):
the kernel semantics from the kernel release and the root memcg's
memory.kmem.slabinfo (EIO only on 3.10 / RHEL 7 kernels, where removed
kmem-active memcgs leak their IDs), the kubepods tree of the cgroupfs
(kubepods) or systemd (kubepods.slice) driver and its kmem-active cgroups
(with what activated each, as far as it shows),
the memory line of /proc/cgroups, leaked memcg IDs counted by kmemcg ID from
the /sys/kernel/slab aliases, the kubelet, runc and docker-runc builds, and
what an earlier verify run left: nokmem-migrate* trees under the memory
root, an unfinished migrate journal and an install without a signature
check (in --state-dir).

--probe-slabinfo and --probe-ids create scratch cgroups (root only).

The report goes to stdout (JSON with -o json), diagnostics to stderr.

--npd exits with the same statuses (the node-problem-detector custom-plugin
codes OK, NonOK and Unknown), and answers a usage error with an "unknown:" line.

--npd prints one line of at most 80 characters on stdout, leading with the
number that matters.

` + exitHelp("detect"),
		Args:        cobra.NoArgs,
		Annotations: annotations(usesRoot, map[string]string{privilegedFlagsAnnotation: "probe-ids,probe-slabinfo", unknownExitAnnotation: strconv.Itoa(exitUnknown)}),
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := df.options(g)
			if err != nil {
				return withExitCode(exitUnknown, err)
			}
			r, err := detect.Run(o)
			if errors.Is(err, detect.ErrProbeTooBig) {
				err = fmt.Errorf("%w: lower --probe-ids", err)
			}
			if npd {
				st, msg := report.NPD(r, err)
				return npdExit(g.Stdout, st, msg)
			}
			if err != nil {
				return withExitCode(exitUnknown, err)
			}
			if textfile != "" {
				if err := report.WriteTextfile(textfile, report.DetectMetrics(r)); err != nil {
					return withExitCode(exitUnknown, err)
				}
			}
			if g.JSON() {
				if err := report.WriteJSON(g.Stdout, r); err != nil {
					return err
				}
			} else {
				printDetect(g.Stdout, r)
			}
			if st := r.Status(); st != detect.Healthy {
				return withExitCode(statusExit(st), nil)
			}
			return nil
		},
	}
	df.register(cmd.Flags())
	cmd.Flags().StringVar(&textfile, "textfile", "", "also write Prometheus metrics to this file atomically (node_exporter textfile collector, *.prom)")
	cmd.Flags().BoolVar(&npd, "npd", false, fmt.Sprintf("node-problem-detector custom-plugin mode: one line on stdout, exit %d OK, %d problem, %d unknown", exitOK, exitProblem, exitUnknown))
	return cmd
}

func npdExit(w io.Writer, st detect.Status, msg string) error {
	if err := report.WriteNPD(w, msg); err != nil {
		return err
	}
	if st == detect.Healthy {
		return nil
	}
	return withExitCode(statusExit(st), nil)
}

func printDetect(w io.Writer, r *detect.Report) {
	fmt.Fprintf(w, "kernel:            %s\n", r.Kernel)
	fmt.Fprintf(w, "semantics:         %s (%s)\n", r.Semantics.Kind, r.Semantics.Reason)
	if r.Slabinfo != "" {
		fmt.Fprintf(w, "slabinfo probe:    a fresh child of the root reads %s\n", r.Slabinfo)
	}
	fmt.Fprintf(w, "cgroup driver:     %s", r.Driver)
	if r.Kubepods != "" {
		fmt.Fprintf(w, " (%s, %d cgroups)", r.Kubepods, r.KubepodsCgroups)
	}
	fmt.Fprintln(w)
	if r.DriverNote != "" {
		fmt.Fprintf(w, "driver note:       %s\n", r.DriverNote)
	}
	if r.Semantics310 {
		fmt.Fprintf(w, "kmem-active:       %d\n", len(r.KmemActive))
		for _, c := range r.KmemActive {
			if cause := r.KmemCauses[c]; cause != "" {
				fmt.Fprintf(w, "  %s (%s)\n", c, cause)
			} else {
				fmt.Fprintf(w, "  %s\n", c)
			}
		}
	} else {
		fmt.Fprintf(w, "kmem-active:       not decidable here (slabinfo proves nothing on this kernel)\n")
	}
	fmt.Fprintf(w, "/proc/cgroups:     memory hierarchy %d, num_cgroups %d, enabled %v\n", r.ProcCgroups.Hierarchy, r.ProcCgroups.NumCgroups, r.ProcCgroups.Enabled)
	if r.Leaked.Available {
		fmt.Fprintf(w, "leaked IDs: %d, %s (by kmemcg ID: %d per-memcg slab aliases, %d live IDs seen, %d live cgroups owning caches under root-cache names, %d live slabinfo unreadable)\n", r.Leaked.IDs, r.Leaked.Basis(), r.Leaked.Aliases, r.Leaked.LiveIDs, r.Leaked.LiveOwners, r.Leaked.LiveUnknown)
	} else {
		fmt.Fprintf(w, "leaked IDs (est.): unavailable (no slab directory)\n")
	}
	if p := r.IDProbe; p != nil {
		if p.Exhausted {
			fmt.Fprintf(w, "ID probe:          exhausted at %d (mkdir: %s): %d free memcg IDs\n", p.Created, p.Errno, p.Created)
		} else {
			fmt.Fprintf(w, "ID probe:          created %d of %d, not exhausted\n", p.Created, p.Cap)
		}
	}
	for _, b := range r.Binaries {
		fmt.Fprintf(w, "binary:            %-11s %s  %s  sha256 %s  %s (%s)\n", b.Name, b.Path, b.Version, b.SHA256[:12], b.Kind, b.Reason)
		if u := b.Upstream; u != nil {
			fmt.Fprintf(w, "  %-17s%s: %s\n", "upstream:", u.Verdict, u.Reason)
			if u.Remedy != "" {
				fmt.Fprintf(w, "  %-17s%s\n", "fix:", u.Remedy)
			}
		}
		for _, l := range b.VulnLines() {
			fmt.Fprintf(w, "  %-17s%s\n", "vulnerability:", l)
		}
	}
	for _, t := range r.Leftovers.TempTrees {
		fmt.Fprintf(w, "temporary tree:    %s\n", t)
	}
	if j := r.Leftovers.Journal; j != nil {
		fmt.Fprintf(w, "migrate journal:   %s phase %q (unfinished: %v)\n", j.Path, j.Phase, j.Unfinished)
	}
	if in := r.Leftovers.Install; in != nil {
		fmt.Fprintf(w, "install record:    %s (signature skipped: %v)\n", in.Path, in.SignatureSkipped)
	}
	for _, p := range r.Problems() {
		fmt.Fprintf(w, "PROBLEM:           %s\n", p.Text)
	}
	verdict := map[detect.Status]string{detect.Healthy: "healthy", detect.ProblemFound: "problem found", detect.Unknown: "unknown"}
	fmt.Fprintf(w, "verdict:           %s (exit %d)\n", verdict[r.Status()], statusExit(r.Status()))
}
