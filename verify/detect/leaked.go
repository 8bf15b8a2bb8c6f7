package detect

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/nokmem/nokmem/verify/memcg"
)

// LeakEstimate counts memcg IDs held by removed cgroups, by kmemcg ID.
//
// Basis (3.10 / RHEL 7, SLUB): every per-memcg slab cache is named
// "<cache>(<kmemcg_id>:<cgroup name>)" (mm/memcontrol.c memcg_cache_name)
// and shows in /sys/kernel/slab under that name. A removed kmem-active memcg
// whose caches live on keeps both its kmemcg ID and its memcg ID: on a real
// RHEL 7.8 kernel 300 removed kmem-active cgroups left exactly 300 distinct
// kmemcg IDs among the aliases and 300 IDs missing from a fill probe
// (docs/memcg-v1-semantics.md §2).
//
// An alias is live when its kmemcg ID belongs to a live cgroup. What a live
// cgroup's memory.kmem.slabinfo shows (mem_cgroup_slabinfo_read →
// cache_show) decides how that is known:
//   - a cache line named "<cache>(<id>:<name>)" (kernels whose cache_show
//     prints the memcg cache's own name) gives the ID itself;
//   - a cache line under the root cache's name (RHEL 7.8: mm/slab.h
//     cache_name returns memcg_params->root_cache->name) says the cgroup
//     owns caches, hence exactly one of the aliased IDs of its name
//     (all of a memcg's caches carry its one kmemcg ID), which one unknown;
//   - the header alone: no cache, no aliased ID.
//
// So for each cgroup name, leaked = distinct aliased IDs not known live −
// live cgroups of that name that own caches under an unknown ID. The
// figure is exact when every live cgroup's slabinfo was read; a cgroup
// whose slabinfo could not be read (or a name with more cache-owning live
// cgroups than IDs, which a walk racing with the kubelet can see) makes it
// a lower bound, and Exact says which. Counting by ID rather than by name
// matters: the IDs of a removed kubepods, burstable or besteffort are
// leaked although cgroups of those names exist again.
type LeakEstimate struct {
	// Available is false when the slab directory does not exist.
	Available bool `json:"available"`
	// Aliases is the number of per-memcg cache entries seen.
	Aliases int `json:"aliases"`
	// IDs is the leaked-ID count; Exact says whether it is exact or a
	// lower bound (see the type's comment).
	IDs   int  `json:"ids"`
	Exact bool `json:"exact"`
	// Dead lists the kmemcg IDs certainly held by removed cgroups as
	// "id:name", sorted by id.
	Dead []string `json:"dead,omitempty"`
	// LiveIDs is how many distinct kmemcg IDs live cgroups showed in their
	// memory.kmem.slabinfo; LiveOwners how many live cgroups showed caches
	// under root-cache names (one aliased ID each, which one unknown);
	// LiveUnknown how many live cgroups' slabinfo could not be read.
	LiveIDs     int `json:"live_ids"`
	LiveOwners  int `json:"live_owners"`
	LiveUnknown int `json:"live_unknown"`
}

// Basis says "exact" or "a lower bound".
func (e LeakEstimate) Basis() string {
	if e.Exact {
		return "exact"
	}
	return "a lower bound"
}

// memcgCache matches a per-memcg cache name and captures id and name.
var memcgCache = regexp.MustCompile(`\((\d+):([^()]*)\)$`)

// memcgCacheInLine matches the same name as the first column of a
// slabinfo line.
var memcgCacheInLine = regexp.MustCompile(`(?m)^\S*\((\d+):[^()]*\)\s`)

// EstimateLeaked reads slabDir and the memory.kmem.slabinfo of every live
// cgroup of h (the root excepted).
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
	byName := map[string][]int{} // name → distinct alias IDs
	seen := map[int]bool{}
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
		if !seen[id] {
			seen[id] = true
			byName[m[2]] = append(byName[m[2]], id)
		}
	}
	live, err := readLive(h)
	if err != nil {
		return e, fmt.Errorf("leak estimate: %w", err)
	}
	e.LiveIDs, e.Exact = len(live.ids), true
	for _, n := range live.owners {
		e.LiveOwners += n
	}
	for _, n := range live.unknown {
		e.LiveUnknown += n
	}
	if e.LiveUnknown > 0 {
		e.Exact = false
	}
	type dead struct {
		id   int
		name string
	}
	var certain []dead
	for name, ids := range byName {
		var gone []int
		for _, id := range ids {
			if !live.ids[id] {
				gone = append(gone, id)
			}
		}
		owners := live.owners[name] + live.unknown[name]
		if owners > len(gone) {
			e.Exact = false
		}
		if owners > 0 {
			e.IDs += max(0, len(gone)-owners)
			continue
		}
		e.IDs += len(gone)
		for _, id := range gone {
			certain = append(certain, dead{id, name})
		}
	}
	slices.SortFunc(certain, func(a, b dead) int { return a.id - b.id })
	for _, d := range certain {
		e.Dead = append(e.Dead, fmt.Sprintf("%d:%s", d.id, d.name))
	}
	return e, nil
}

// liveCaches is what the live cgroups' memory.kmem.slabinfo showed: the
// kmemcg IDs named in it; per basename, the cgroups that listed caches
// under root-cache names (owners) and those whose file could not be read.
type liveCaches struct {
	ids             map[int]bool
	owners, unknown map[string]int
}

// readLive reads memory.kmem.slabinfo of every cgroup below the root.
func readLive(h memcg.Hierarchy) (liveCaches, error) {
	l := liveCaches{ids: map[int]bool{}, owners: map[string]int{}, unknown: map[string]int{}}
	all, err := h.Walk("")
	if err != nil {
		return l, err
	}
	for _, rel := range all {
		if rel == "" {
			continue
		}
		s, err := h.ReadString(rel, memcg.KmemSlabinfo)
		switch {
		case errors.Is(err, syscall.EIO), errors.Is(err, fs.ErrNotExist):
			continue // kmem inactive (3.10), or removed while we walked
		case err != nil:
			l.unknown[path.Base(rel)]++
			continue
		}
		named := memcgCacheInLine.FindAllStringSubmatch(s+"\n", -1)
		for _, m := range named {
			id, err := strconv.Atoi(m[1])
			if err != nil {
				return l, fmt.Errorf("%s: %w", h.Path(rel, memcg.KmemSlabinfo), err)
			}
			l.ids[id] = true
		}
		if len(named) == 0 && hasCacheLine(s) {
			l.owners[path.Base(rel)]++
		}
	}
	return l, nil
}

// hasCacheLine: the slabinfo text lists at least one cache (a line that is
// neither the version line nor the "# name" column header).
func hasCacheLine(s string) bool {
	for _, line := range strings.Split(s, "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") && !strings.HasPrefix(line, "slabinfo - version") {
			return true
		}
	}
	return false
}
