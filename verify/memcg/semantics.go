package memcg

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// DefaultOSRelease holds the running kernel's release.
const DefaultOSRelease = "/proc/sys/kernel/osrelease"

// Kind says how a kernel treats kmem accounting of cgroup v1 memcgs.
type Kind string

const (
	// Kind310 is the 3.10 / RHEL 7 behaviour (upstream 3.8–3.18): kmem
	// accounting is off until a limit write activates it, memory.kmem.slabinfo
	// fails with EIO while it is off (always for the root memcg), and a
	// removed kmem-active memcg keeps its memcg ID while its per-memcg slab
	// caches live: the leak.
	Kind310 Kind = "3.10"
	// KindModern is a kernel that frees memcg IDs at rmdir (upstream ≥4.7,
	// commit 73f576c04b94 "mm: memcontrol: fix cgroup creation failure after
	// many small jobs"): the leak cannot happen, and slabinfo never fails
	// with EIO, so it proves nothing.
	KindModern Kind = "modern"
	// KindUnknown: what was read does not decide it.
	KindUnknown Kind = "unknown"
)

// Semantics is what ReadSemantics found out about the kernel.
type Semantics struct {
	// Release is the kernel release, as in /proc/sys/kernel/osrelease.
	Release string `json:"release"`
	// Kind is the decision.
	Kind Kind `json:"kind"`
	// RootSlabinfo is how memory.kmem.slabinfo of the root memcg reads.
	RootSlabinfo Slabinfo `json:"root_slabinfo"`
	// Reason says what the decision rests on, in one sentence.
	Reason string `json:"reason"`
}

// Leaks reports whether removed kmem-active memcgs can leak their IDs here.
func (s Semantics) Leaks() bool { return s.Kind == Kind310 }

// ReadKernelRelease reads a file laid out like /proc/sys/kernel/osrelease.
func ReadKernelRelease(path string) (string, error) {
	if path == "" {
		path = DefaultOSRelease
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("kernel release: %w", err)
	}
	r := strings.TrimSpace(string(b))
	if r == "" {
		return "", fmt.Errorf("kernel release: %s is empty", path)
	}
	return r, nil
}

// ReadNodeSemantics reads the kernel release from the file osRelease (""
// is DefaultOSRelease) and decides with ReadSemantics. It is the one
// decision of verify: detect reports it, migrate refuses to run without
// Kind310, assert and run apply only on Kind310.
func (h Hierarchy) ReadNodeSemantics(osRelease string) (Semantics, error) {
	release, err := ReadKernelRelease(osRelease)
	if err != nil {
		return Semantics{Kind: KindUnknown}, err
	}
	return h.ReadSemantics(release)
}

// ReadSemantics decides the kernel's kmem semantics without writing
// anything, from the kernel release and from memory.kmem.slabinfo of the
// root memcg, which exists on every node and can never account kmem:
//
//   - 3.8–3.18 and RHEL 7 (mm/memcontrol.c mem_cgroup_slabinfo_read):
//     EIO unless memcg_can_account_kmem(), which is false for the root;
//   - 3.19–4.12: the "slabinfo - version: 2.1" header (generic slab
//     iterators, memcg_slab_show); 4.13–5.8: the root's caches or nothing;
//   - ≥5.9 (commit 4330a26bc452 deprecating the file): always empty;
//   - missing without CONFIG_SLABINFO / CONFIG_SLUB_DEBUG.
//
// So a root that reads EIO on a 3.x release is Kind310; a root that reads
// without error is KindModern (only 3.x kernels fail the read, and they
// fail it at the root); a missing file falls back to the release (≥4.7
// frees IDs at rmdir). A root that reads EIO on a ≥4 release contradicts
// both and is KindUnknown, as is a 3.x release without the file (the EIO
// check of kmem-active cgroups needs it).
func (h Hierarchy) ReadSemantics(release string) (Semantics, error) {
	s := Semantics{Release: release, Kind: KindUnknown}
	si, err := h.SlabinfoState("")
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Op == "parse" {
		// Caches listed without the header (4.13–5.8): readable all the same.
		si, err = SlabinfoHeader, nil
	}
	if err != nil {
		return s, fmt.Errorf("kernel semantics: %w", err)
	}
	s.RootSlabinfo = si
	major, minor, ok := parseRelease(release)
	switch {
	case !ok:
		s.Reason = fmt.Sprintf("kernel release %q does not parse", release)
	case si == SlabinfoEIO && major == 3:
		s.Kind = Kind310
		s.Reason = fmt.Sprintf("kernel %s and the root memcg's memory.kmem.slabinfo reads EIO", release)
	case si == SlabinfoEIO:
		s.Reason = fmt.Sprintf("the root memcg's memory.kmem.slabinfo reads EIO, which only 3.x kernels do, but the release is %s", release)
	case si != SlabinfoMissing && major >= 4:
		s.Kind = KindModern
		s.Reason = fmt.Sprintf("kernel %s frees memcg IDs at rmdir and the root memcg's memory.kmem.slabinfo reads %s, not EIO", release, si)
	case si != SlabinfoMissing:
		s.Reason = fmt.Sprintf("kernel %s, but the root memcg's memory.kmem.slabinfo reads %s instead of EIO", release, si)
	case major > 4 || major == 4 && minor >= 7:
		s.Kind = KindModern
		s.Reason = fmt.Sprintf("kernel %s frees memcg IDs at rmdir (memory.kmem.slabinfo is not built in)", release)
	default:
		s.Reason = fmt.Sprintf("kernel %s has no memory.kmem.slabinfo: kmem-active cgroups cannot be told apart", release)
	}
	return s, nil
}

// parseRelease returns major and minor of a release such as
// "3.10.0-1127.el7.x86_64" or "6.18.44".
func parseRelease(r string) (major, minor int, ok bool) {
	parts := strings.SplitN(r, ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	major, err := strconv.Atoi(parts[0])
	if err != nil {
		return 0, 0, false
	}
	end := strings.IndexFunc(parts[1], func(c rune) bool { return c < '0' || c > '9' })
	if end < 0 {
		end = len(parts[1])
	}
	minor, err = strconv.Atoi(parts[1][:end])
	if err != nil {
		return 0, 0, false
	}
	return major, minor, true
}

// ProbeSlabinfo creates a scratch child directly under the root (the root
// is never kmem-active, so the child is not either), reads its
// memory.kmem.slabinfo and removes it. Confirm judges the result.
func (h Hierarchy) ProbeSlabinfo() (s Slabinfo, err error) {
	name := ScratchName("probe")
	if err := h.Mkdir(name); err != nil {
		return "", fmt.Errorf("semantics probe: %w", err)
	}
	defer func() {
		if rerr := h.Rmdir(name); rerr != nil {
			err = errors.Join(err, fmt.Errorf("semantics probe: %w", rerr))
		}
	}()
	s, err = h.SlabinfoState(name)
	if err != nil {
		return "", fmt.Errorf("semantics probe: %w", err)
	}
	return s, nil
}

// Confirm checks s against how a fresh child of the root read
// memory.kmem.slabinfo (ProbeSlabinfo): on 3.10 it must read EIO, on a
// modern kernel it must not. A contradiction makes the result KindUnknown.
func (s Semantics) Confirm(fresh Slabinfo) Semantics {
	eio := fresh == SlabinfoEIO
	if s.Kind == Kind310 && !eio || s.Kind == KindModern && eio {
		s.Reason = fmt.Sprintf("%s, but a fresh child of the root reads %s", s.Reason, fresh)
		s.Kind = KindUnknown
	}
	return s
}
