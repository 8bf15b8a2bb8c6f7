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
// (README, "Leaked memcg IDs").
//
// An alias is live when its kmemcg ID belongs to a live kmem-active cgroup.
// The kmemcg ID of a live cgroup is read, without writing, from its
// memory.kmem.slabinfo: on 3.10 it lists the cgroup's own caches by the same
// names (mem_cgroup_slabinfo_read → cache_show), so the IDs in it are that
// cgroup's. A live kmem-active cgroup whose slabinfo lists no cache yet has
// an unknown ID; it may own at most one aliased ID, so for each name the
// count drops by the number of such cgroups with that name. The estimate is
// therefore a lower bound, exact when every live kmem-active cgroup lists
// its caches. Counting by ID rather than by name matters: the IDs of a
// removed kubepods, burstable or besteffort are leaked although cgroups of
// those names exist again.
type LeakEstimate struct {
	// Available is false when the slab directory does not exist.
	Available bool `json:"available"`
	// Aliases is the number of per-memcg cache entries seen.
	Aliases int `json:"aliases"`
	// IDs is the leaked-ID estimate (a lower bound).
	IDs int `json:"ids"`
	// Dead lists the kmemcg IDs certainly held by removed cgroups as
	// "id:name", sorted by id.
	Dead []string `json:"dead,omitempty"`
	// LiveIDs is how many distinct kmemcg IDs live cgroups showed in their
	// memory.kmem.slabinfo; LiveUnknown how many live kmem-active cgroups
	// showed none.
	LiveIDs     int `json:"live_ids"`
	LiveUnknown int `json:"live_unknown"`
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
	liveIDs, unknown, err := liveKmemIDs(h)
	if err != nil {
		return e, fmt.Errorf("leak estimate: %w", err)
	}
	e.LiveIDs = len(liveIDs)
	for _, n := range unknown {
		e.LiveUnknown += n
	}
	type dead struct {
		id   int
		name string
	}
	var certain []dead
	for name, ids := range byName {
		var gone []int
		for _, id := range ids {
			if !liveIDs[id] {
				gone = append(gone, id)
			}
		}
		if k := unknown[name]; k > 0 {
			e.IDs += max(0, len(gone)-k)
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

// liveKmemIDs reads memory.kmem.slabinfo of every cgroup below the root:
// the kmemcg IDs named in it, and per basename the number of kmem-active
// cgroups (slabinfo readable) that named none. On a kernel whose slabinfo
// never fails every cgroup counts as kmem-active, which only makes the
// estimate lower.
func liveKmemIDs(h memcg.Hierarchy) (map[int]bool, map[string]int, error) {
	all, err := h.Walk("")
	if err != nil {
		return nil, nil, err
	}
	ids := map[int]bool{}
	unknown := map[string]int{}
	for _, rel := range all {
		if rel == "" {
			continue
		}
		s, err := h.ReadString(rel, memcg.KmemSlabinfo)
		switch {
		case errors.Is(err, syscall.EIO), errors.Is(err, fs.ErrNotExist):
			continue // kmem inactive (3.10), or removed while we walked
		case err != nil:
			return nil, nil, err
		}
		found := false
		for _, m := range memcgCacheInLine.FindAllStringSubmatch(s+"\n", -1) {
			id, err := strconv.Atoi(m[1])
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", h.Path(rel, memcg.KmemSlabinfo), err)
			}
			ids[id] = true
			found = true
		}
		if !found {
			unknown[path.Base(rel)]++
		}
	}
	return ids, unknown, nil
}
