package memcg

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"syscall"
)

// Slabinfo says how memory.kmem.slabinfo behaves on a cgroup whose kmem
// accounting was never activated (see ReadSemantics for the kernel lines).
type Slabinfo string

const (
	// SlabinfoEIO: reading fails with EIO (3.10 / RHEL 7, upstream ≤3.18).
	// Only on such kernels does EIO prove that kmem accounting is off.
	SlabinfoEIO Slabinfo = "eio"
	// SlabinfoHeader: the "slabinfo - version: 2.1" header (3.19–4.12).
	SlabinfoHeader Slabinfo = "header"
	// SlabinfoEmpty: an empty file (≥5.9, and 4.13–5.8 without caches).
	SlabinfoEmpty Slabinfo = "empty"
	// SlabinfoMissing: no such file (kernel built without slabinfo).
	SlabinfoMissing Slabinfo = "missing"
)

// SlabinfoHeaderLine starts the slabinfo of a kmem-active 3.10 cgroup.
const SlabinfoHeaderLine = "slabinfo - version: 2.1"

// Features are what a probe on a scratch cgroup found out about the kernel.
type Features struct {
	// MoveCharge lists the accepted memory.move_charge_at_immigrate values
	// among 0..3: all four up to 6.12, only 0 from 6.13 (6b611388b626 "memcg-v1: remove charge move code").
	MoveCharge []int `json:"move_charge"`
	// Memsw is true when memory.memsw.* files exist (swap accounting).
	Memsw bool `json:"memsw"`
	// Slabinfo is how slabinfo reads on a fresh, never-activated cgroup.
	Slabinfo Slabinfo `json:"slabinfo"`
	// UseHierarchyZero is true when use_hierarchy=0 was accepted on a fresh
	// child of the root (false on ≥5.11, and on 3.10 when the root is
	// hierarchical: mem_cgroup_hierarchy_write).
	UseHierarchyZero bool `json:"use_hierarchy_zero"`
}

// MovesCharge reports whether the kernel accepts v as move_charge_at_immigrate.
func (f Features) MovesCharge(v int) bool {
	for _, x := range f.MoveCharge {
		if x == v {
			return true
		}
	}
	return false
}

// Detect probes the kernel on a new scratch cgroup named scratch directly
// under the root (the root is never kmem-active, so the probe activates
// nothing), then removes it. The caller picks a unique name. Detect never
// writes memory.kmem.limit_in_bytes.
func (h Hierarchy) Detect(scratch string) (f Features, err error) {
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
		err := h.WriteInt(scratch, MoveCharge, int64(v))
		switch {
		case err == nil:
			f.MoveCharge = append(f.MoveCharge, v)
		case errors.Is(err, syscall.EINVAL):
		default:
			return f, fmt.Errorf("detect: %w", err)
		}
	}
	if err := h.WriteInt(scratch, MoveCharge, 0); err != nil {
		return f, fmt.Errorf("detect: %w", err)
	}

	switch _, err := h.ReadString(scratch, MemswLimit); {
	case err == nil:
		f.Memsw = true
	case !errors.Is(err, fs.ErrNotExist):
		return f, fmt.Errorf("detect: %w", err)
	}

	if f.Slabinfo, err = h.SlabinfoState(scratch); err != nil {
		return f, fmt.Errorf("detect: %w", err)
	}

	switch err := h.Write(scratch, UseHierarchy, "0"); {
	case err == nil:
		f.UseHierarchyZero = true
	case errors.Is(err, syscall.EINVAL):
	default:
		return f, fmt.Errorf("detect: %w", err)
	}
	return f, nil
}

// SlabinfoState reads memory.kmem.slabinfo of cgroup rel and classifies the
// result. On a 3.10 kernel SlabinfoEIO means kmem accounting is off for rel
// and SlabinfoHeader means it is on; never ask about the root, which always
// reads EIO there (mem_cgroup_slabinfo_read: memcg_can_account_kmem is false for the root).
func (h Hierarchy) SlabinfoState(rel string) (Slabinfo, error) {
	s, err := h.ReadString(rel, KmemSlabinfo)
	switch {
	case errors.Is(err, syscall.EIO):
		return SlabinfoEIO, nil
	case errors.Is(err, fs.ErrNotExist):
		return SlabinfoMissing, nil
	case err != nil:
		return "", err
	case s == "":
		return SlabinfoEmpty, nil
	case strings.HasPrefix(s, SlabinfoHeaderLine):
		return SlabinfoHeader, nil
	}
	return "", pathErr("parse", h.Path(rel, KmemSlabinfo), fmt.Errorf("unexpected content %.40q", s))
}
