// Package assert proves that kernel-memory accounting is off for the kubepods
// tree: on a kernel with 3.10 semantics, memory.kmem.slabinfo must fail with
// EIO for kubepods, every cgroup below it, and, when asked (Options.Probe), a
// probe child created under kubepods (which shows what new pod cgroups will
// inherit). The kernel's semantics are read (memcg.ReadNodeSemantics, as detect
// and migrate read them), never
// probed: without Options.Probe the check writes nothing. On other kernels
// slabinfo never fails with EIO, so the check does not apply.
package assert

import (
	"errors"
	"fmt"

	"github.com/nokmem/nokmem/verify/memcg"
)

// Offender is a cgroup whose slabinfo did not fail with EIO.
type Offender struct {
	// Cgroup is relative to the memory root.
	Cgroup string `json:"cgroup"`
	// Path is the slabinfo file that was read.
	Path string `json:"path"`
	// Slabinfo is what the read gave instead of EIO.
	Slabinfo memcg.Slabinfo `json:"slabinfo"`
	// Probe is true for the probe child created by the check.
	Probe bool `json:"probe,omitempty"`
}

// Result is the outcome of Check.
type Result struct {
	// Applicable is false on kernels without 3.10 semantics.
	Applicable bool `json:"applicable"`
	// Reason explains a not-applicable result.
	Reason   string `json:"reason,omitempty"`
	Kubepods string `json:"kubepods,omitempty"`
	// Checked counts the cgroups read, the probe child included.
	Checked int `json:"checked"`
	// Probe is the probe child created and removed again (only with
	// Options.Probe), relative to the root.
	Probe     string     `json:"probe,omitempty"`
	Offenders []Offender `json:"offenders"`
	// Passed: applicable and no offenders, or not applicable and not strict.
	Passed bool `json:"passed"`
}

// Options for Check.
type Options struct {
	// Kubepods is the kubepods cgroup relative to the root; empty means
	// whichever of kubepods and kubepods.slice exists.
	Kubepods string
	// OSRelease holds the kernel release; empty means
	// memcg.DefaultOSRelease.
	OSRelease string
	// Probe also creates a child under Kubepods, reads its slabinfo (what a
	// new pod cgroup inherits) and removes it again. It needs root; without
	// it Check only reads.
	Probe bool
	// Strict makes "not applicable" a failure.
	Strict bool
}

// Check runs the assertion on hierarchy h. It writes nothing unless
// o.Probe asks for the probe child; when the probe fails, the Result
// returned with the error names the child if it was made.
func Check(h memcg.Hierarchy, o Options) (*Result, error) {
	r := &Result{Offenders: []Offender{}}
	sem, err := h.ReadNodeSemantics(o.OSRelease)
	if err != nil {
		return nil, fmt.Errorf("assert: %w", err)
	}
	switch sem.Kind {
	case memcg.KindModern:
		r.Reason = fmt.Sprintf("not applicable: %s; this kernel does not have 3.10 semantics, so slabinfo EIO cannot prove kmem accounting is off (and removed cgroups do not leak their IDs)", sem.Reason)
		r.Passed = !o.Strict
		return r, nil
	case memcg.KindUnknown:
		r.Reason = "cannot assert: the kernel's kmem semantics are unknown: " + sem.Reason
		return r, nil
	}
	r.Applicable = true
	r.Kubepods = o.Kubepods
	if r.Kubepods == "" {
		_, kp, err := h.Driver()
		if err != nil {
			return nil, fmt.Errorf("assert: %w", err)
		}
		if kp == "" {
			return nil, fmt.Errorf("assert: %w under %s", memcg.ErrNoKubepods, h.Root)
		}
		r.Kubepods = kp
	}
	all, err := h.Walk(r.Kubepods)
	if err != nil {
		return nil, fmt.Errorf("assert: %w", err)
	}
	for _, rel := range all {
		if err := r.check(h, rel, false); err != nil {
			return nil, err
		}
	}
	if o.Probe {
		if err := r.probe(h); err != nil {
			return r, err // r.Probe says whether the child was made
		}
	}
	r.Passed = len(r.Offenders) == 0
	return r, nil
}

// probe creates a child of the checked kubepods, reads its slabinfo and
// removes it; r.Probe names it.
func (r *Result) probe(h memcg.Hierarchy) error {
	probe := r.Kubepods + "/" + memcg.ScratchName("assert")
	if err := h.Mkdir(probe); err != nil {
		return fmt.Errorf("assert: probe child: %w", err)
	}
	r.Probe = probe
	cerr := r.check(h, probe, true)
	if rerr := h.Rmdir(probe); rerr != nil {
		cerr = errors.Join(cerr, fmt.Errorf("assert: remove probe child %s: %w", h.Path(probe), rerr))
	}
	return cerr
}

func (r *Result) check(h memcg.Hierarchy, rel string, probe bool) error {
	s, err := h.SlabinfoState(rel)
	if err != nil {
		return fmt.Errorf("assert: %w", err)
	}
	if s == memcg.SlabinfoMissing && !probe {
		return nil // removed while we walked (a pod went away)
	}
	r.Checked++
	if s != memcg.SlabinfoEIO {
		r.Offenders = append(r.Offenders, Offender{Cgroup: rel, Path: h.Path(rel, memcg.KmemSlabinfo), Slabinfo: s, Probe: probe})
	}
	return nil
}
