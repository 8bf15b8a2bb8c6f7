package migrate

// Phase names the last step of a migration that completed and was recorded
// in the journal. The forward order is Planned, TempBuilt, MovedOut,
// OldRemoved, NewBuilt, MovedBack, Done; a rollback ends in RolledBack.
type Phase string

const (
	// PhasePlanned: the snapshot is in the journal; no cgroup was touched.
	PhasePlanned Phase = "planned"
	// PhaseTempBuilt: the temporary tree mirrors kubepods, settings included.
	PhaseTempBuilt Phase = "temp-built"
	// PhaseMovedOut: every process of kubepods is in the temporary tree.
	PhaseMovedOut Phase = "moved-out"
	// PhaseOldRemoved: the old (kmem-active) kubepods tree is gone.
	PhaseOldRemoved Phase = "old-removed"
	// PhaseNewBuilt: a fresh kubepods tree with every setting exists.
	PhaseNewBuilt Phase = "new-built"
	// PhaseMovedBack: every process is back in the new kubepods tree.
	PhaseMovedBack Phase = "moved-back"
	// PhaseDone: the temporary tree is gone and the invariants held.
	PhaseDone Phase = "done"
	// PhaseRolledBack: a rollback finished; the journal is only a record.
	PhaseRolledBack Phase = "rolled-back"
)

// forward lists the phases of a migration in order.
var forward = []Phase{PhasePlanned, PhaseTempBuilt, PhaseMovedOut, PhaseOldRemoved, PhaseNewBuilt, PhaseMovedBack, PhaseDone}

// Phases returns the forward phases in order (for tests that stop at each).
func Phases() []Phase { return append([]Phase(nil), forward...) }

func (p Phase) index() int {
	for i, f := range forward {
		if f == p {
			return i
		}
	}
	return -1
}

func (p Phase) known() bool { return p.index() >= 0 || p == PhaseRolledBack }

// terminal reports whether nothing is left to do for this journal.
func (p Phase) terminal() bool { return p == PhaseDone || p == PhaseRolledBack }

// reached reports whether phase q is at or before p in the forward order.
func (p Phase) reached(q Phase) bool { return p.index() >= q.index() }
