package migrate

// State is one row of the migration's state table: what is on the node when
// the journal records Phase, and what finishing (a rerun of verify migrate)
// and rolling back (verify migrate --rollback) do from there. Every step is
// idempotent, so a kill -9 at any point leaves one of these states.
type State struct {
	// Phase is the journal phase; NoJournal and RollingBack are the rows
	// without a phase of their own.
	Phase    string `json:"phase"`
	OnNode   string `json:"on_node"`
	Finish   string `json:"finish"`
	Rollback string `json:"rollback"`
}

// The rows of States that are no Phase.
const (
	// NoJournal: no journal, or none that is unfinished.
	NoJournal = "(none)"
	// RollingBack: any phase before swapped, once a rollback started.
	RollingBack = "any, rolling back"
)

// States is the state table, the one source of the package documentation
// and of docs/migration-states.md: every Phase has a row, in order.
var States = []State{
	{NoJournal, "original tree at kubepods", "plan → planned", "nothing to roll back"},
	{string(PhasePlanned), "original tree; a fresh tree may be partly built", "build → built", "remove the fresh tree → rolled-back"},
	{string(PhaseBuilt), "fresh tree (temporary name), no processes", "move → moved", "remove the fresh tree → rolled-back"},
	{string(PhaseMoved), "every process in the fresh tree", "set aside (a rerun adopts cgroups created meanwhile) → set-aside",
		"move back, remove the fresh tree → rolled-back (the message says the processes are back in a kmem-active tree)"},
	{string(PhaseSetAside), "old tree at the set-aside name, fresh tree at the temporary name", "swap (rename, check) → swapped",
		"rename the old tree back, move back, remove the fresh tree → rolled-back"},
	{string(PhaseSwapped), "fresh tree at kubepods, old tree set aside; the kubelet may run", "remove the old tree → done",
		"refused: every process and setting is already in place, going back would move them into the kmem-active tree; the message says to finish"},
	{string(PhaseDone), "fresh tree at kubepods, old tree gone", "already migrated", "nothing to roll back"},
	{string(PhaseRolledBack), "original tree at kubepods", "a new migration → planned", "nothing to roll back"},
	{RollingBack, "a rollback was interrupted", "refused: finish the rollback (--rollback) or set the journal aside (--abandon)", "resumes the rollback"},
}
