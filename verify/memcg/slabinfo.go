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
