package report

import (
	"fmt"

	"github.com/nokmem/nokmem/verify/detect"
	"github.com/nokmem/nokmem/verify/install"
)

// journalUnfinished: a journal exists and is not done or rolled back, or
// cannot be read.
func journalUnfinished(j *detect.JournalState) bool {
	return j != nil && (j.Unfinished || j.Error != "")
}

// DetectMetrics are the Prometheus samples of a detect report (the
// node_exporter textfile of verify detect --textfile).
func DetectMetrics(r *detect.Report) []Metric {
	m := []Metric{
		{Name: "nokmem_kernel_semantics_310", Help: "1 when the kernel has 3.10 / RHEL 7 kmem semantics (removed kmem-active memcgs leak their IDs).", Labels: map[string]string{"kernel": r.Kernel}, Value: Bool(r.Semantics310)},
		{Name: "nokmem_kubepods_cgroups", Help: "Cgroups in the kubepods tree, kubepods included.", Labels: map[string]string{"driver": r.Driver}, Value: float64(r.KubepodsCgroups)},
		{Name: "nokmem_kmem_active_cgroups", Help: "Kmem-active cgroups in the kubepods tree (3.10 semantics only).", Value: float64(len(r.KmemActive))},
		{Name: "nokmem_memory_num_cgroups", Help: "num_cgroups of the memory line of /proc/cgroups.", Value: float64(r.ProcCgroups.NumCgroups)},
		{Name: "nokmem_leaked_ids_estimate", Help: "Leaked memcg IDs: kmemcg IDs of /sys/kernel/slab aliases that belong to no live cgroup (exact when nokmem_leaked_ids_exact is 1, else a lower bound).", Value: float64(r.Leaked.IDs)},
		{Name: "nokmem_leaked_ids_exact", Help: "1 when nokmem_leaked_ids_estimate is exact (every live cgroup's memory.kmem.slabinfo was read), 0 when it is a lower bound.", Value: Bool(r.Leaked.Exact)},
		{Name: "nokmem_slab_aliases", Help: "Per-memcg slab cache aliases in /sys/kernel/slab.", Value: float64(r.Leaked.Aliases)},
		{Name: "nokmem_leftover_temp_trees", Help: "nokmem-migrate* trees left under the memory root.", Value: float64(len(r.Leftovers.TempTrees))},
		{Name: "nokmem_migrate_journal_unfinished", Help: "1 when the migration journal in the state folder is unfinished (or unreadable): a migration stopped half-way.", Value: Bool(journalUnfinished(r.Leftovers.Journal))},
	}
	if r.IDProbe != nil {
		m = append(m, Metric{Name: "nokmem_id_probe_free", Help: "Scratch cgroups the ID probe could create (free IDs when exhausted=1).", Labels: map[string]string{"exhausted": fmt.Sprint(Bool(r.IDProbe.Exhausted))}, Value: float64(r.IDProbe.Created)})
	}
	for _, b := range r.Binaries {
		m = append(m, Metric{Name: "nokmem_binary_nokmem", Help: "1 when the binary is a nokmem build.", Labels: map[string]string{"name": b.Name, "path": b.Path, "kind": b.Kind}, Value: Bool(b.Nokmem())})
	}
	for _, b := range r.Binaries {
		version, fix := "", ""
		if u := b.Upstream; u != nil {
			version, fix = u.Version.Version, u.Bundle
			if fix == "" {
				fix = u.FixVersion
			}
		}
		m = append(m, Metric{Name: "nokmem_binary_affected", Help: "1 when the binary may activate kmem accounting: a stock version that does (verdict affected) or that verify cannot classify (unknown); 0 for a nokmem build or an unaffected stock version. fix: the bundle (or matrix version) that fixes it.",
			Labels: map[string]string{"name": b.Name, "version": version, "verdict": b.Verdict(), "fix": fix}, Value: Bool(b.Problem())})
	}
	for _, b := range r.Binaries {
		m = append(m, Metric{Name: "nokmem_binary_vulnerabilities", Help: "Known vulnerabilities of the binary's version (Go vulnerability database and nokmem's supplement); 0 when none or the version is not recognised (version=\"\").",
			Labels: map[string]string{"name": b.Name, "path": b.Path, "version": b.VulnVersion()}, Value: float64(b.VulnCount())})
	}
	m = append(m, installRecordMetrics(r)...)
	m = append(m, Metric{Name: "nokmem_problem", Help: "detect's exit status: 0 healthy, 1 problem found, 2 unknown.", Value: float64(r.Status())})
	return m
}

// installRecordMetrics are detect's metrics of the install record: an
// interrupted install (state "installing") and a record that cannot be read.
func installRecordMetrics(r *detect.Report) []Metric {
	in := r.Leftovers.Install
	unfinished, untrusted := false, false
	if in != nil {
		unfinished, untrusted = in.State == install.StateInstalling, in.Error != ""
	}
	return []Metric{
		{Name: "nokmem_install_unfinished", Help: "1 when the install record says \"installing\": an install was interrupted and the binaries may be half replaced.", Value: Bool(unfinished)},
		{Name: "nokmem_install_record_untrusted", Help: "1 when the install record cannot be read; install and rollback refuse it (verify install --abandon).", Value: Bool(untrusted)},
	}
}
