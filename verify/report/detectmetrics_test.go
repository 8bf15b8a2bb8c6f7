package report_test

import (
	"testing"

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
		for _, m := range report.DetectMetrics(r) {
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
