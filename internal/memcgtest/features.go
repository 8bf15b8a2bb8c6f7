package memcgtest

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"syscall"

	"github.com/nokmem/nokmem/verify/memcg"
)

// Features are what a probe on a scratch cgroup found out about the kernel.
type Features struct {
	// MoveCharge lists the accepted memory.move_charge_at_immigrate values
	// among 0..3: all four up to 6.12, only 0 from 6.13 (6b611388b626 "memcg-v1: remove charge move code").
	MoveCharge []int `json:"move_charge"`
	// Memsw is true when memory.memsw.* files exist (swap accounting).
	Memsw bool `json:"memsw"`
	// Slabinfo is how slabinfo reads on a fresh, never-activated cgroup.
	Slabinfo memcg.Slabinfo `json:"slabinfo"`
	// UseHierarchyZero is true when use_hierarchy=0 was accepted on a fresh
	// child of the root (false on ≥5.11, and on 3.10 when the root is
	// hierarchical: mem_cgroup_hierarchy_write).
	UseHierarchyZero bool `json:"use_hierarchy_zero"`
}

// MovesCharge reports whether the kernel accepts v as move_charge_at_immigrate.
func (f Features) MovesCharge(v int) bool {
	return slices.Contains(f.MoveCharge, v)
}

// ProbeFeatures probes the kernel of h on a new scratch cgroup named scratch directly
// under the root (the root is never kmem-active, so the probe activates
// nothing), then removes it. The caller picks a unique name. ProbeFeatures never
// writes memory.kmem.limit_in_bytes. The tests use it to know what the
// kernel under them accepts; verify itself never probes this way.
func ProbeFeatures(h memcg.Hierarchy, scratch string) (f Features, err error) {
	if strings.Contains(scratch, "/") || scratch == "" {
		return f, fmt.Errorf("detect: scratch cgroup %q must be a single name under the root", scratch)
	}
	if err := h.Mkdir(scratch); err != nil {
		return f, fmt.Errorf("detect: %w", err)
	}
	defer func() {
		if rerr := h.Rmdir(scratch); rerr != nil && err == nil {
			err = fmt.Errorf("detect: %w", rerr)
		}
	}()

	for v := 0; v <= 3; v++ {
		err := h.WriteInt(scratch, memcg.MoveCharge, int64(v))
		switch {
		case err == nil:
			f.MoveCharge = append(f.MoveCharge, v)
		case errors.Is(err, syscall.EINVAL):
		default:
			return f, fmt.Errorf("detect: %w", err)
		}
	}
	if err := h.WriteInt(scratch, memcg.MoveCharge, 0); err != nil {
		return f, fmt.Errorf("detect: %w", err)
	}

	switch _, err := h.ReadString(scratch, memcg.MemswLimit); {
	case err == nil:
		f.Memsw = true
	case !errors.Is(err, fs.ErrNotExist):
		return f, fmt.Errorf("detect: %w", err)
	}

	if f.Slabinfo, err = h.SlabinfoState(scratch); err != nil {
		return f, fmt.Errorf("detect: %w", err)
	}

	switch err := h.Write(scratch, memcg.UseHierarchy, "0"); {
	case err == nil:
		f.UseHierarchyZero = true
	case errors.Is(err, syscall.EINVAL):
	default:
		return f, fmt.Errorf("detect: %w", err)
	}
	return f, nil
}
