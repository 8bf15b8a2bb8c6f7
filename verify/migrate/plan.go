package migrate

import "github.com/nokmem/nokmem/verify/memcg"

// Plan is what a migration would do, for --dry-run.
type Plan struct {
	Kubepods string `json:"kubepods"`
	Temp     string `json:"temp"`
	// Resume is the journal phase a run would continue from ("" for a new run).
	Resume    Phase `json:"resume,omitempty"`
	Cgroups   int   `json:"cgroups"`
	Processes int   `json:"processes"`
	Ops       Ops   `json:"operations"`
}

// Ops counts the operations of a full migration by class. Settings are
// upper bounds: a value equal to the inherited one is not written.
type Ops struct {
	Mkdir           int `json:"mkdir"`
	SettingCopies   int `json:"setting_copies"`
	MoveChargeWrite int `json:"move_charge_writes"`
	PidMoves        int `json:"pid_moves"`
	ForceEmpty      int `json:"force_empty"`
	Rmdir           int `json:"rmdir"`
	KmemLimitWrites int `json:"kmem_limit_writes"`
}

// DryRun reads the tree (or the unfinished journal) and returns the plan.
// It writes nothing: no journal, no cgroup.
func (e *Engine) DryRun() (*Plan, error) {
	j, err := loadJournal(e.cfg.StateDir)
	if err != nil {
		return nil, &RunError{Err: err}
	}
	p := &Plan{Kubepods: e.h.Path(e.kubepods), Temp: e.h.Path(e.temp)}
	var snap Snapshot
	if j != nil && !j.Phase.terminal() {
		p.Resume, snap = j.Phase, j.Snapshot
	} else {
		if err := CheckLayout(e.h, e.kubepods); err != nil {
			return nil, &RunError{Err: err}
		}
		if snap, err = takeSnapshot(e.h, e.kubepods); err != nil {
			return nil, &RunError{Err: err}
		}
	}
	p.Cgroups, p.Processes = snap.Counts()
	p.Ops = countOps(snap)
	return p, nil
}

func countOps(s Snapshot) Ops {
	n, procs := s.Counts()
	o := Ops{Mkdir: 2 * n, PidMoves: 2 * procs, ForceEmpty: n, Rmdir: 2 * n, MoveChargeWrite: 2 * n}
	for _, node := range s.Nodes {
		st := node.Settings
		for _, f := range st.fields() {
			if *f.val != "" && f.file != memcg.MoveCharge {
				o.SettingCopies += 2
			}
		}
		if st.MoveCharge != "" {
			o.MoveChargeWrite++ // restored at the end
		}
	}
	return o
}
