package memcgsim

import (
	"fmt"
	"slices"
	"strings"
)

// IDsInUse returns how many memcg IDs are taken: live cgroups (root
// included) and leaked ones.
func (s *Sim) IDsInUse() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ids)
}

// LeakedIDs returns the memcg IDs held by removed cgroups, sorted.
func (s *Sim) LeakedIDs() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]int, 0, len(s.leaked))
	for _, cg := range s.leaked {
		out = append(out, cg.id)
	}
	slices.Sort(out)
	return out
}

// Live returns the number of live cgroups, root included: the num_cgroups of
// /proc/cgroups, which on 3.10 does not see leaked IDs
// (memcg-v1-semantics §1c).
func (s *Sim) Live() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live
}

// KmemActive reports whether kmem accounting is on for cgroup rel.
func (s *Sim) KmemActive(rel string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cg, err := s.lookup(rel)
	if err != nil {
		return false, fmt.Errorf("kmem state of %q: %w", rel, err)
	}
	return s.kmemActive(cg), nil
}

// Usage returns the hierarchical memory usage of cgroup rel in bytes.
func (s *Sim) Usage(rel string) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cg, err := s.lookup(rel)
	if err != nil {
		return 0, fmt.Errorf("usage of %q: %w", rel, err)
	}
	return cg.usage(), nil
}

// rootCaches are the slab caches that get a per-memcg copy in the model; the
// real kernel has more (memcg-v1-semantics §1g: 499 aliases for 300 leaked
// memcgs).
var rootCaches = []string{"cred_jar", "dentry"}

// SlabCaches lists the entries of the simulated /sys/kernel/slab: the root
// caches, then on the RHEL profiles one alias "<cache>(<kmemcg_id>:<name>)"
// per root cache for every kmem-active memcg that has allocated: a live one
// once a task ran in it while kmem was active (slabUsed: the kernel creates
// a memcg's caches on its first allocation), every leaked one
// (memcg-v1-semantics §1g). The model assumes such a memcg has allocated
// from each cache, as a pod's processes do.
func (s *Sim) SlabCaches() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(rootCaches)
	if !s.profile.rhel() {
		return out
	}
	var add func(cg *cgroup)
	add = func(cg *cgroup) {
		if cg.kmemID >= 0 && cg.slabUsed {
			out = append(out, aliases(cg)...)
		}
		for _, c := range cg.children {
			add(c)
		}
	}
	add(s.root)
	for _, cg := range s.leaked {
		out = append(out, aliases(cg)...)
	}
	slices.Sort(out)
	return out
}

func aliases(cg *cgroup) []string {
	out := make([]string, 0, len(rootCaches))
	for _, c := range rootCaches {
		out = append(out, fmt.Sprintf("%s(%d:%s)", c, cg.kmemID, cg.name))
	}
	return out
}

// ProcCgroups renders the memory line of /proc/cgroups.
func (s *Sim) ProcCgroups() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	b.WriteString("#subsys_name\thierarchy\tnum_cgroups\tenabled\n")
	fmt.Fprintf(&b, "memory\t1\t%d\t1\n", s.live)
	return b.String()
}
