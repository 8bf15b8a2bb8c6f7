package detect

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"regexp"
	"sort"
	"strconv"

	"github.com/nokmem/nokmem/verify/memcg"
)

// LeakEstimate counts per-memcg slab caches whose cgroup is gone. On RHEL 7
// SLUB kernels every per-memcg cache is aliased in /sys/kernel/slab as
// "<cache>(<kmemcg_id>:<cgroup name>)"; a dead memcg that still has such a
// cache keeps its memcg ID (kernel-semantics.md §1g, §3d: 300 distinct
// suffixes for 300 leaked IDs). Cgroup names are basenames only, so a dead
// cgroup that shares its name with a live one is not counted: the estimate
// is a lower bound.
type LeakEstimate struct {
	// Available is false when the slab directory does not exist.
	Available bool `json:"available"`
	// Aliases is the number of per-memcg cache entries seen.
	Aliases int `json:"aliases"`
	// IDs is the number of distinct (id:name) pairs whose name has no
	// live cgroup: the leaked-ID estimate.
	IDs int `json:"ids"`
	// Dead lists those pairs as "id:name", sorted by id.
	Dead []string `json:"dead,omitempty"`
}

var memcgCache = regexp.MustCompile(`\((\d+):([^()]*)\)$`)

// EstimateLeaked reads slabDir and the live cgroup names of h.
func EstimateLeaked(slabDir string, h memcg.Hierarchy) (LeakEstimate, error) {
	var e LeakEstimate
	ents, err := os.ReadDir(slabDir)
	if errors.Is(err, fs.ErrNotExist) {
		return e, nil
	}
	if err != nil {
		return e, fmt.Errorf("leak estimate: %w", err)
	}
	e.Available = true
	live, err := h.Walk("")
	if err != nil {
		return e, fmt.Errorf("leak estimate: %w", err)
	}
	names := make(map[string]bool, len(live))
	for _, rel := range live {
		names[path.Base(rel)] = true
	}
	type pair struct {
		id   int
		name string
	}
	dead := map[pair]bool{}
	for _, ent := range ents {
		m := memcgCache.FindStringSubmatch(ent.Name())
		if m == nil {
			continue
		}
		e.Aliases++
		id, err := strconv.Atoi(m[1])
		if err != nil {
			return e, fmt.Errorf("leak estimate: %s: %w", path.Join(slabDir, ent.Name()), err)
		}
		if !names[m[2]] {
			dead[pair{id, m[2]}] = true
		}
	}
	e.IDs = len(dead)
	ps := make([]pair, 0, len(dead))
	for p := range dead {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].id != ps[j].id {
			return ps[i].id < ps[j].id
		}
		return ps[i].name < ps[j].name
	})
	for _, p := range ps {
		e.Dead = append(e.Dead, fmt.Sprintf("%d:%s", p.id, p.name))
	}
	return e, nil
}
