package migrate

// Phase names the last step of a migration that completed and was recorded
// in the journal. The forward order is Planned, Built, Moved, SetAside,
// Swapped (the critical part ends here: the kubelet may start), Done (the
// old tree is removed); a rollback ends in RolledBack. The full state table
// with every transition is States.
type Phase string

const (
	// PhasePlanned: the snapshot is in the journal; no cgroup was touched
	// (a temporary tree may be partly built if the run died building it).
	PhasePlanned Phase = "planned"
	// PhaseBuilt: the fresh tree exists under the temporary name with every
	// setting, move_charge_at_immigrate armed where processes will arrive.
	PhaseBuilt Phase = "built"
	// PhaseMoved: every process is in the fresh tree; move_charge restored.
	PhaseMoved Phase = "moved"
	// PhaseSetAside: the old kubepods was renamed to the set-aside name;
	// intruder cgroups found in it were adopted into the fresh tree first.
	PhaseSetAside Phase = "set-aside"
	// PhaseSwapped: the fresh tree was renamed to kubepods and checked. The
	// kubelet may run from here on.
	PhaseSwapped Phase = "swapped"
	// PhaseDone: the set-aside old tree is removed.
	PhaseDone Phase = "done"
	// PhaseRolledBack: a rollback finished; the journal is only a record.
	PhaseRolledBack Phase = "rolled-back"
)

// forward lists the phases of a migration in order.
var forward = []Phase{PhasePlanned, PhaseBuilt, PhaseMoved, PhaseSetAside, PhaseSwapped, PhaseDone}

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

// Terminal reports whether nothing is left to do for a journal at phase p.
func (p Phase) Terminal() bool { return p == PhaseDone || p == PhaseRolledBack }

// reached reports whether phase q is at or before p in the forward order.
func (p Phase) reached(q Phase) bool { return p.index() >= q.index() }
