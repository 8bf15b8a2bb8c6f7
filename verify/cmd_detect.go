package main

import (
	"fmt"
	"io"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/nokmem/nokmem/verify/binary"
	"github.com/nokmem/nokmem/verify/detect"
	"github.com/nokmem/nokmem/verify/memcg"
	"github.com/nokmem/nokmem/verify/report"
)

func init() { subcommands = append(subcommands, newDetectCmd) }

// binaryFlags select the kubelet and runtime binaries (detect, install, run).
type binaryFlags struct {
	paths      map[string]*string
	searchDirs []string
	knownSums  string
	timeout    time.Duration
}

func (b *binaryFlags) register(fs *pflag.FlagSet) {
	b.paths = map[string]*string{}
	for _, n := range binary.Names {
		b.paths[n] = fs.String(n+"-path", "", "path of the "+n+" binary (default: search --search-dirs)")
	}
	fs.StringSliceVar(&b.searchDirs, "search-dirs", binary.DefaultSearchDirs, "directories searched for kubelet, runc and docker-runc")
	fs.StringVar(&b.knownSums, "known-sums", "", "SHA256SUMS of a nokmem release: binaries with these checksums count as nokmem builds")
	fs.DurationVar(&b.timeout, "version-timeout", binary.DefaultVersionTimeout, "how long one `BINARY --version` may run before it is killed (with its process group); the binaries run at once")
}

func (b *binaryFlags) options() (binary.Options, error) {
	o := binary.Options{Paths: map[string]string{}, SearchDirs: b.searchDirs, Timeout: b.timeout}
	for n, p := range b.paths {
		if *p != "" {
			o.Paths[n] = *p
		}
	}
	if b.knownSums != "" {
		m, err := binary.ReadKnownSums(b.knownSums)
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
	probeSlabinfo                   bool
	probeIDs                        int
}

func (d *detectFlags) register(fs *pflag.FlagSet) {
	d.binaryFlags.register(fs)
	fs.StringVar(&d.osRelease, "os-release", memcg.DefaultOSRelease, "file holding the kernel release")
	fs.StringVar(&d.procCgroups, "proc-cgroups", detect.DefaultProcCgroups, "/proc/cgroups or a file laid out like it")
	fs.StringVar(&d.slabDir, "slab-dir", detect.DefaultSlabDir, "/sys/kernel/slab or a directory laid out like it (leaked-ID estimate)")
	fs.BoolVar(&d.probeSlabinfo, "probe-slabinfo", false, "also create a scratch cgroup under the memory root, read its memory.kmem.slabinfo and remove it, to confirm the kernel semantics (needs root)")
	fs.IntVar(&d.probeIDs, "probe-ids", 0, fmt.Sprintf("ID-headroom probe: create up to N scratch cgroups under the memory root until the ID space is exhausted (ENOSPC, ENOMEM or EBUSY), then remove them (max %d; needs root; briefly uses IDs and ~33 KB of kernel memory each: run with the kubelet stopped)", detect.MaxProbeIDs))
}

func (d *detectFlags) options(g *globalOptions) (detect.Options, error) {
	bo, err := d.binaryFlags.options()
	if err != nil {
		return detect.Options{}, err
	}
	return detect.Options{Root: g.Root, OSRelease: d.osRelease, ProcCgroups: d.procCgroups, SlabDir: d.slabDir, StateDir: g.StateDir,
		ProbeSlabinfo: d.probeSlabinfo, ProbeIDs: d.probeIDs, Binaries: bo, Logger: g.Logger}, nil
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

Exit status (also with --npd, node-problem-detector custom-plugin codes):
  0  healthy: nothing wrong; a kernel where the leak cannot happen is healthy
  1  problem found (each listed on a PROBLEM line)
  2  unknown: the kernel semantics could not be decided, or detect failed
  64 usage error (with --npd also an "unknown:" line; see verify exit-codes)

--npd prints one line of at most 80 characters on stdout, leading with the
number that matters.`,
		Args:        cobra.NoArgs,
		Annotations: annotations(usesRoot, map[string]string{privilegedFlagsAnnotation: "probe-ids,probe-slabinfo", unknownExitAnnotation: "2"}),
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := df.options(g)
			if err != nil {
				return withExitCode(int(detect.Unknown), err)
			}
			r, err := detect.Run(o)
			if npd {
				st, msg := npdStatus(r, err)
				return npdExit(g.Stdout, st, msg)
			}
			if err != nil {
				return withExitCode(int(detect.Unknown), err)
			}
			if textfile != "" {
				if err := report.WriteTextfile(textfile, detectMetrics(r)); err != nil {
					return withExitCode(int(detect.Unknown), err)
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
				return withExitCode(int(st), nil)
			}
			return nil
		},
	}
	df.register(cmd.Flags())
	cmd.Flags().StringVar(&textfile, "textfile", "", "also write Prometheus metrics to this file atomically (node_exporter textfile collector, *.prom)")
	cmd.Flags().BoolVar(&npd, "npd", false, "node-problem-detector custom-plugin mode: one line on stdout, exit 0 OK, 1 problem, 2 unknown")
	return cmd
}

// npdStatus is the node-problem-detector verdict and its one line (at most
// report.NPDMaxMessage characters), leading with the number that matters:
// kmem-active cgroups (or the first problem's count) when something is
// wrong, the leaked IDs when all is well.
func npdStatus(r *detect.Report, err error) (report.NPDStatus, string) {
	if err != nil {
		return report.NPDUnknown, "unknown: " + err.Error()
	}
	leaked := ""
	if r.Semantics310 && r.Leaked.Available {
		// NPD lines are short: ">=" marks a lower bound (detect's output says why).
		leaked = fmt.Sprintf("%d leaked IDs", r.Leaked.IDs)
		if !r.Leaked.Exact {
			leaked = ">=" + leaked
		}
	}
	switch r.Status() {
	case detect.ProblemFound:
		var parts []string
		for i, p := range r.Problems() {
			parts = append(parts, p.Short)
			if i == 0 && leaked != "" {
				parts = append(parts, leaked)
			}
		}
		if r.Semantics310 {
			if b := fixBundle(r.Binaries); b != "" {
				parts = append(parts, "fix "+b)
			}
		}
		return report.NPDProblem, fitLine(parts)
	case detect.Unknown:
		return report.NPDUnknown, "unknown: " + r.Semantics.Reason
	}
	if !r.Semantics310 {
		return report.NPDOK, fmt.Sprintf("OK: kernel %s frees memcg IDs at rmdir, no leak", r.Kernel)
	}
	builds := "nokmem builds"
	for _, b := range r.Binaries {
		if !b.Nokmem() {
			builds = "no affected builds"
		}
	}
	// Most important first: fitLine drops from the end what does not fit.
	parts := []string{fmt.Sprintf("OK: 0 kmem-active of %d kubepods cgroups", r.KubepodsCgroups), builds}
	if r.Driver == memcg.DriverSystemd {
		parts = []string{"OK: systemd driver, kmem only on request", fmt.Sprintf("0 kmem-active of %d cgroups", r.KubepodsCgroups)}
	}
	if leaked != "" {
		parts = append(parts, leaked)
	}
	return report.NPDOK, fitLine(parts)
}

// fixBundle is the one bundle that fixes every affected binary, "" when
// there is none or more than one.
func fixBundle(bins []binary.Binary) string {
	bundle := ""
	for _, b := range bins {
		if !b.Problem() {
			continue
		}
		if b.Upstream == nil || b.Upstream.Bundle == "" || bundle != "" && bundle != b.Upstream.Bundle {
			return ""
		}
		bundle = b.Upstream.Bundle
	}
	return bundle
}

// fitLine joins parts with ", " and, when they do not fit in an NPD line,
// keeps the leading ones and says how many were left out.
func fitLine(parts []string) string {
	line := ""
	for i, p := range parts {
		next := p
		if i > 0 {
			next = line + ", " + p
		}
		more := ""
		if rest := len(parts) - i - 1; rest > 0 {
			more = fmt.Sprintf(", +%d more", rest)
		}
		if utf8.RuneCountInString(next+more) > report.NPDMaxMessage && i > 0 {
			return line + fmt.Sprintf(", +%d more", len(parts)-i)
		}
		line = next
	}
	return line
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

// journalUnfinished: a journal exists and is not done or rolled back, or
// cannot be read.
func journalUnfinished(j *detect.JournalState) bool {
	return j != nil && (j.Unfinished || j.Error != "")
}

func detectMetrics(r *detect.Report) []report.Metric {
	m := []report.Metric{
		{Name: "nokmem_kernel_semantics_310", Help: "1 when the kernel has 3.10 / RHEL 7 kmem semantics (removed kmem-active memcgs leak their IDs).", Labels: map[string]string{"kernel": r.Kernel}, Value: report.Bool(r.Semantics310)},
		{Name: "nokmem_kubepods_cgroups", Help: "Cgroups in the kubepods tree, kubepods included.", Labels: map[string]string{"driver": r.Driver}, Value: float64(r.KubepodsCgroups)},
		{Name: "nokmem_kmem_active_cgroups", Help: "Kmem-active cgroups in the kubepods tree (3.10 semantics only).", Value: float64(len(r.KmemActive))},
		{Name: "nokmem_memory_num_cgroups", Help: "num_cgroups of the memory line of /proc/cgroups.", Value: float64(r.ProcCgroups.NumCgroups)},
		{Name: "nokmem_leaked_ids_estimate", Help: "Leaked memcg IDs: kmemcg IDs of /sys/kernel/slab aliases that belong to no live cgroup (exact when nokmem_leaked_ids_exact is 1, else a lower bound).", Value: float64(r.Leaked.IDs)},
		{Name: "nokmem_leaked_ids_exact", Help: "1 when nokmem_leaked_ids_estimate is exact (every live cgroup's memory.kmem.slabinfo was read), 0 when it is a lower bound.", Value: report.Bool(r.Leaked.Exact)},
		{Name: "nokmem_slab_aliases", Help: "Per-memcg slab cache aliases in /sys/kernel/slab.", Value: float64(r.Leaked.Aliases)},
		{Name: "nokmem_leftover_temp_trees", Help: "nokmem-migrate* trees left under the memory root.", Value: float64(len(r.Leftovers.TempTrees))},
		{Name: "nokmem_migrate_journal_unfinished", Help: "1 when the migration journal in the state folder is unfinished (or unreadable): a migration stopped half-way.", Value: report.Bool(journalUnfinished(r.Leftovers.Journal))},
	}
	if r.IDProbe != nil {
		m = append(m, report.Metric{Name: "nokmem_id_probe_free", Help: "Scratch cgroups the ID probe could create (free IDs when exhausted=1).", Labels: map[string]string{"exhausted": fmt.Sprint(report.Bool(r.IDProbe.Exhausted))}, Value: float64(r.IDProbe.Created)})
	}
	for _, b := range r.Binaries {
		m = append(m, report.Metric{Name: "nokmem_binary_nokmem", Help: "1 when the binary is a nokmem build.", Labels: map[string]string{"name": b.Name, "path": b.Path, "kind": b.Kind}, Value: report.Bool(b.Nokmem())})
	}
	for _, b := range r.Binaries {
		version, fix := "", ""
		if u := b.Upstream; u != nil {
			version, fix = u.Version.Version, u.Bundle
			if fix == "" {
				fix = u.FixVersion
			}
		}
		m = append(m, report.Metric{Name: "nokmem_binary_affected", Help: "1 when the binary may activate kmem accounting: a stock version that does (verdict affected) or that verify cannot classify (unknown); 0 for a nokmem build or an unaffected stock version. fix: the bundle (or matrix version) that fixes it.",
			Labels: map[string]string{"name": b.Name, "version": version, "verdict": b.Verdict(), "fix": fix}, Value: report.Bool(b.Problem())})
	}
	for _, b := range r.Binaries {
		m = append(m, report.Metric{Name: "nokmem_binary_vulnerabilities", Help: "Known vulnerabilities of the binary's version (Go vulnerability database and nokmem's supplement); 0 when none or the version is not recognised (version=\"\").",
			Labels: map[string]string{"name": b.Name, "path": b.Path, "version": b.VulnVersion()}, Value: float64(b.VulnCount())})
	}
	m = append(m, installRecordMetrics(r)...)
	m = append(m, report.Metric{Name: "nokmem_problem", Help: "detect's exit status: 0 healthy, 1 problem found, 2 unknown.", Value: float64(r.Status())})
	return m
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
	switch r.Status() {
	case detect.Healthy:
		fmt.Fprintln(w, "verdict:           healthy (exit 0)")
	case detect.ProblemFound:
		fmt.Fprintln(w, "verdict:           problem found (exit 1)")
	case detect.Unknown:
		fmt.Fprintln(w, "verdict:           unknown (exit 2)")
	}
}
