package migrate_test

import (
	"slices"
	"testing"

	"github.com/nokmem/nokmem/verify/migrate"
)

// TestStatesCoverEveryPhase: the state table has one row per phase, in
// the forward order, then rolled-back, between the rows without a phase.
func TestStatesCoverEveryPhase(t *testing.T) {
	var got []string
	for _, s := range migrate.States {
		if s.OnNode == "" || s.Finish == "" || s.Rollback == "" {
			t.Errorf("row %q is incomplete: %+v", s.Phase, s)
		}
		got = append(got, s.Phase)
	}
	want := []string{migrate.NoJournal}
	for _, p := range migrate.Phases() {
		want = append(want, string(p))
	}
	want = append(want, string(migrate.PhaseRolledBack), migrate.RollingBack)
	if !slices.Equal(got, want) {
		t.Errorf("rows %v, want %v", got, want)
	}
}
