package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/nokmem/nokmem/verify/detect"
	"github.com/nokmem/nokmem/verify/report"
)

func init() { subcommands = append(subcommands, newDetectCmd) }

// binaryFlags select the kubelet and runtime binaries (detect, install, run).
type binaryFlags struct {
	paths      map[string]*string
	searchDirs []string
	knownSums  string
}

func (b *binaryFlags) register(fs *pflag.FlagSet) {
	b.paths = map[string]*string{}
	for _, n := range detect.BinaryNames {
		b.paths[n] = fs.String(n+"-path", "", "path of the "+n+" binary (default: search --search-dirs)")
	}
	fs.StringSliceVar(&b.searchDirs, "search-dirs", detect.DefaultSearchDirs, "directories searched for kubelet, runc and docker-runc")
	fs.StringVar(&b.knownSums, "known-sums", "", "SHA256SUMS of a nokmem release: binaries with these checksums count as nokmem builds")
}

func (b *binaryFlags) options() (detect.BinaryOptions, error) {
	o := detect.BinaryOptions{Paths: map[string]string{}, SearchDirs: b.searchDirs}
	for n, p := range b.paths {
		if *p != "" {
			o.Paths[n] = *p
		}
	}
	if b.knownSums != "" {
		m, err := detect.ReadKnownSums(b.knownSums)
		if err != nil {
			return o, err
		}
		o.KnownSums = m
	}
	return o, nil
}

// detectFlags are the inputs of detect (detect and run).
type detectFlags struct {
	binaryFlags
	osRelease, procCgroups, slabDir string
	probeIDs                        int
}

func (d *detectFlags) register(fs *pflag.FlagSet) {
	d.binaryFlags.register(fs)
	fs.StringVar(&d.osRelease, "os-release", detect.DefaultOSRelease, "file holding the kernel release")
	fs.StringVar(&d.procCgroups, "proc-cgroups", detect.DefaultProcCgroups, "/proc/cgroups or a file laid out like it")
	fs.StringVar(&d.slabDir, "slab-dir", detect.DefaultSlabDir, "/sys/kernel/slab or a directory laid out like it (leaked-ID estimate)")
	fs.IntVar(&d.probeIDs, "probe-ids", 0, fmt.Sprintf("ID-headroom probe: create up to N scratch cgroups under the memory root until ENOSPC/ENOMEM, then remove them (max %d; briefly uses IDs and ~33 KB of kernel memory each: run with the kubelet stopped)", detect.MaxProbeIDs))
}

func (d *detectFlags) options(g *globalOptions) (detect.Options, error) {
	bo, err := d.binaryFlags.options()
	if err != nil {
		return detect.Options{}, err
	}
	return detect.Options{Root: g.Root, OSRelease: d.osRelease, ProcCgroups: d.procCgroups, SlabDir: d.slabDir, ProbeIDs: d.probeIDs, Binaries: bo, Logger: g.Logger}, nil
}

func newDetectCmd(g *globalOptions) *cobra.Command {
	var (
		df       detectFlags
		textfile string
		npd      bool
	)
	cmd := &cobra.Command{
		Use:   "detect",
		Short: "Report the node's kmem accounting state, leaked memcg IDs and kubelet/runc builds",
		Long: `detect probes the kernel (a scratch cgroup under the memory root: slabinfo EIO
means 3.10 semantics), finds kubepods (cgroupfs) or kubepods.slice (systemd),
lists every kmem-active cgroup under it, reads the memory line of /proc/cgroups,
estimates leaked memcg IDs from /sys/kernel/slab aliases, and identifies the
kubelet, runc and docker-runc binaries.

--npd turns it into a node-problem-detector custom plugin: one short line on
stdout, exit 0 OK, 1 problem, 2 unknown.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := df.options(g)
			if err != nil {
				if npd {
					return npdExit(g.Stdout, report.NPDUnknown, "unknown: "+err.Error())
				}
				return err
			}
			r, err := detect.Run(o)
			if npd {
				st, msg := npdStatus(r, err)
				return npdExit(g.Stdout, st, msg)
			}
			if err != nil {
				return err
			}
			if textfile != "" {
				if err := report.WriteTextfile(textfile, detectMetrics(r)); err != nil {
					return err
				}
			}
			if g.JSON() {
				return report.WriteJSON(g.Stdout, r)
			}
			printDetect(g.Stderr, r)
			return nil
		},
	}
	df.register(cmd.Flags())
	cmd.Flags().StringVar(&textfile, "textfile", "", "also write Prometheus metrics to this file atomically (node_exporter textfile collector, *.prom)")
	cmd.Flags().BoolVar(&npd, "npd", false, "node-problem-detector custom-plugin mode")
	return cmd
}

// problems lists what is wrong on a node with 3.10 semantics.
func problems(r *detect.Report) []string {
	if !r.Semantics310 {
		return nil
	}
	var p []string
	if n := len(r.KmemActive); n > 0 {
		p = append(p, fmt.Sprintf("%d kmem-active cgroups under %s", n, r.Kubepods))
	}
	for _, b := range r.Binaries {
		if !b.Nokmem() {
			p = append(p, fmt.Sprintf("%s is %s", b.Name, b.Kind))
		}
	}
	return p
}

func npdStatus(r *detect.Report, err error) (report.NPDStatus, string) {
	switch {
	case err != nil:
		return report.NPDUnknown, "unknown: " + err.Error()
	case !r.Semantics310:
		return report.NPDOK, fmt.Sprintf("OK: kernel %s has no 3.10 kmem semantics (not applicable)", r.Kernel)
	}
	if p := problems(r); len(p) > 0 {
		return report.NPDProblem, fmt.Sprintf("KmemAccounting: %s; leaked IDs≈%d", strings.Join(p, ", "), r.Leaked.IDs)
	}
	return report.NPDOK, fmt.Sprintf("OK: kmem off in %d kubepods cgroups; leaked IDs≈%d", r.KubepodsCgroups, r.Leaked.IDs)
}

func npdExit(w io.Writer, st report.NPDStatus, msg string) error {
	if err := report.WriteNPD(w, msg); err != nil {
		return err
	}
	if st == report.NPDOK {
		return nil
	}
	return withExitCode(int(st), nil)
}

func detectMetrics(r *detect.Report) []report.Metric {
	m := []report.Metric{
		{Name: "nokmem_kernel_semantics_310", Help: "1 when a fresh memory cgroup reads memory.kmem.slabinfo as EIO (3.10 / RHEL 7 semantics).", Labels: map[string]string{"kernel": r.Kernel}, Value: report.Bool(r.Semantics310)},
		{Name: "nokmem_kubepods_cgroups", Help: "Cgroups in the kubepods tree, kubepods included.", Labels: map[string]string{"driver": r.Driver}, Value: float64(r.KubepodsCgroups)},
		{Name: "nokmem_kmem_active_cgroups", Help: "Kmem-active cgroups in the kubepods tree (3.10 semantics only).", Value: float64(len(r.KmemActive))},
		{Name: "nokmem_memory_num_cgroups", Help: "num_cgroups of the memory line of /proc/cgroups.", Value: float64(r.ProcCgroups.NumCgroups)},
		{Name: "nokmem_leaked_ids_estimate", Help: "Distinct (kmemcg_id:name) /sys/kernel/slab aliases of removed cgroups: a lower bound of leaked memcg IDs.", Value: float64(r.Leaked.IDs)},
		{Name: "nokmem_slab_aliases", Help: "Per-memcg slab cache aliases in /sys/kernel/slab.", Value: float64(r.Leaked.Aliases)},
	}
	if r.IDProbe != nil {
		m = append(m, report.Metric{Name: "nokmem_id_probe_free", Help: "Scratch cgroups the ID probe could create (free IDs when exhausted=1).", Labels: map[string]string{"exhausted": fmt.Sprint(report.Bool(r.IDProbe.Exhausted))}, Value: float64(r.IDProbe.Created)})
	}
	for _, b := range r.Binaries {
		m = append(m, report.Metric{Name: "nokmem_binary_nokmem", Help: "1 when the binary is a nokmem build.", Labels: map[string]string{"name": b.Name, "path": b.Path, "kind": b.Kind}, Value: report.Bool(b.Nokmem())})
	}
	p, _ := npdStatus(r, nil)
	m = append(m, report.Metric{Name: "nokmem_problem", Help: "1 when kmem accounting is on under kubepods or a kubelet/runtime binary is not a nokmem build (3.10 semantics only).", Value: report.Bool(p == report.NPDProblem)})
	return m
}

func printDetect(w io.Writer, r *detect.Report) {
	fmt.Fprintf(w, "kernel:            %s\n", r.Kernel)
	sem := "no (EIO proves nothing here; not applicable)"
	if r.Semantics310 {
		sem = "yes"
	}
	fmt.Fprintf(w, "3.10 semantics:    %s (fresh cgroup slabinfo: %s)\n", sem, r.Slabinfo)
	fmt.Fprintf(w, "cgroup driver:     %s", r.Driver)
	if r.Kubepods != "" {
		fmt.Fprintf(w, " (%s, %d cgroups)", r.Kubepods, r.KubepodsCgroups)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "kmem-active:       %d\n", len(r.KmemActive))
	for _, c := range r.KmemActive {
		fmt.Fprintf(w, "  %s\n", c)
	}
	fmt.Fprintf(w, "/proc/cgroups:     memory hierarchy %d, num_cgroups %d, enabled %v\n", r.ProcCgroups.Hierarchy, r.ProcCgroups.NumCgroups, r.ProcCgroups.Enabled)
	if r.Leaked.Available {
		fmt.Fprintf(w, "leaked IDs (est.): %d (%d per-memcg slab aliases)\n", r.Leaked.IDs, r.Leaked.Aliases)
	} else {
		fmt.Fprintf(w, "leaked IDs (est.): unavailable (no slab directory)\n")
	}
	if p := r.IDProbe; p != nil {
		fmt.Fprintf(w, "ID probe:          created %d of %d, exhausted %v %s\n", p.Created, p.Cap, p.Exhausted, p.Errno)
	}
	for _, b := range r.Binaries {
		fmt.Fprintf(w, "binary:            %-11s %s  %s  sha256 %s  %s (%s)\n", b.Name, b.Path, b.Version, b.SHA256[:12], b.Kind, b.Reason)
	}
	if p := problems(r); len(p) > 0 {
		fmt.Fprintf(w, "PROBLEM:           %s\n", strings.Join(p, "; "))
	}
}
