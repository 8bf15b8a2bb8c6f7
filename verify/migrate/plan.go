package migrate

// Plan is what a migration would do, for --dry-run.
type Plan struct {
	Kubepods string `json:"kubepods"`
	Temp     string `json:"temp"`
	Aside    string `json:"aside"`
	// Resume is the journal phase a run would continue from ("" for a new run).
	Resume    Phase `json:"resume,omitempty"`
	Cgroups   int   `json:"cgroups"`
	Processes int   `json:"processes"`
	Ops       Ops   `json:"operations"`
}

// Ops counts the operations of a full migration by class. Critical ones
// happen while the kubelet is stopped; the rmdirs of the old tree after.
type Ops struct {
	Mkdir           int `json:"mkdir"`
	SettingCopies   int `json:"setting_copies"`
	MoveChargeWrite int `json:"move_charge_writes"`
	PidMoves        int `json:"pid_moves"`
	Renames         int `json:"renames"`
	ForceEmpty      int `json:"force_empty"`
	Rmdir           int `json:"rmdir"`
	KmemLimitWrites int `json:"kmem_limit_writes"`
}

// DryRun reads the tree (or the unfinished journal) and returns the plan.
// It writes nothing: no journal, no cgroup.
func (e *Engine) DryRun() (*Plan, error) {
	j, err := loadJournal(e.cfg.StateDir, e.kubepods)
	if err != nil {
		return nil, &RunError{Err: err}
	}
	p := &Plan{Kubepods: e.h.Path(e.kubepods), Temp: e.h.Path(e.temp), Aside: e.h.Path(e.aside)}
	if j != nil && !j.Phase.Terminal() {
		e.j = j
		p.Resume = j.Phase
	} else {
		if err := CheckLayout(e.h, e.kubepods); err != nil {
			return nil, &RunError{Err: err}
		}
		snap, err := takeSnapshot(e.fs, e.kubepods, e.pt)
		if err != nil {
			return nil, &RunError{Err: err}
		}
		e.j = &Journal{Snapshot: snap}
	}
	p.Cgroups, p.Processes = e.j.Snapshot.Counts()
	p.Ops = e.countOps()
	return p, nil
}

func (e *Engine) countOps() Ops {
	n, procs := e.j.Snapshot.Counts()
	o := Ops{Mkdir: n, PidMoves: procs, Rmdir: n, Renames: 2, SettingCopies: len(e.written())}
	for _, node := range e.j.Snapshot.Nodes {
		if len(node.Pids) > 0 || len(node.Threads) > 0 {
			o.PidMoves += len(node.Threads)
			o.MoveChargeWrite++
			if node.Settings.MoveCharge != "3" {
				o.MoveChargeWrite++ // restored after the moves
			}
		}
	}
	return o
}
