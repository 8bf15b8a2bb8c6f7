package main

import (
	"strings"
	"testing"

	"github.com/nokmem/nokmem/verify/affected"
	"github.com/nokmem/nokmem/verify/detect"
	"github.com/nokmem/nokmem/verify/report"
)

// The journal metric that NokmemMigrationUnfinished (deploy/prometheus)
// alerts on: 1 for an unfinished or unreadable journal, 0 for none or a
// finished one.
func TestDetectMetricJournalUnfinished(t *testing.T) {
	for name, tc := range map[string]struct {
		j    *detect.JournalState
		want float64
	}{
		"none":       {nil, 0},
		"done":       {&detect.JournalState{Phase: "done"}, 0},
		"unfinished": {&detect.JournalState{Phase: "swapped", Unfinished: true}, 1},
		"unreadable": {&detect.JournalState{Error: "bad checksum"}, 1},
	} {
		r := &detect.Report{KmemActive: []string{}, Leftovers: detect.Leftovers{Journal: tc.j}}
		found := false
		for _, m := range detectMetrics(r) {
			if m.Name == "nokmem_migrate_journal_unfinished" {
				found = true
				if m.Value != tc.want {
					t.Errorf("%s: nokmem_migrate_journal_unfinished %v, want %v", name, m.Value, tc.want)
				}
			}
		}
		if !found {
			t.Errorf("%s: no nokmem_migrate_journal_unfinished metric", name)
		}
	}
}

// The metric NokmemVulnerableRunc (deploy/prometheus) alerts on: the
// number of known, fixed-upstream vulnerabilities of each binary, with
// their CVE ids; 0 for a release without any.
func TestDetectMetricVulnerabilities(t *testing.T) {
	rc5, _ := affected.Parse("runc", "runc version 1.0.0-rc5+nokmem.0ace4e969451\ncommit: 4fc53a81fb7c994640722ac585fa9ca548971871\n")
	fixed, _ := affected.Parse("runc", "runc version 1.3.6\ncommit: v1.3.6-0-g0b9fa21b\n")
	r := &detect.Report{KmemActive: []string{}, Binaries: []detect.Binary{
		{Name: "runc", Path: "/usr/bin/runc", Kind: detect.KindNokmem, Vulnerabilities: affected.Vulnerabilities(rc5)},
		{Name: "docker-runc", Path: "/usr/bin/docker-runc", Kind: detect.KindNokmem, Vulnerabilities: affected.Vulnerabilities(fixed)},
	}}
	got := map[string]report.Metric{}
	for _, m := range detectMetrics(r) {
		if m.Name == "nokmem_binary_vulnerabilities" {
			got[m.Labels["name"]] = m
		}
	}
	if m := got["runc"]; m.Value < 1 || !strings.Contains(m.Labels["ids"], "CVE-2019-5736") || !strings.Contains(m.Labels["ids"], "CVE-2024-21626") {
		t.Errorf("runc v1.0.0-rc5: %+v, want CVE-2019-5736 and CVE-2024-21626 among its ids", m)
	}
	if m, ok := got["docker-runc"]; !ok || m.Value != 0 || m.Labels["ids"] != "" {
		t.Errorf("runc v1.3.6: %+v (present %v), want 0 and no ids", m, ok)
	}
}
