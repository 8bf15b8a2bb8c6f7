// Package detect finds out what state a node is in with respect to the cgroup
// v1 kernel-memory (kmem) accounting leak: whether the kernel has 3.10
// semantics, which cgroup driver the kubelet uses, which cgroups under
// kubepods are kmem-active, how many memcg IDs have leaked, whether the
// kubelet and runc binaries are nokmem builds, and what an earlier verify
// run left behind (a temporary tree, an unfinished migration journal, an
// install without a signature check).
//
// Detect only reads. The kernel's semantics come from the kernel release
// and the root memcg (memcg.ReadNodeSemantics, the decision migrate,
// assert and run share); the two probes that create
// cgroups (a scratch child, the ID-headroom probe) run only when asked.
package detect

import (
	"fmt"
	"log/slog"

	"github.com/nokmem/nokmem/verify/binary"
	"github.com/nokmem/nokmem/verify/memcg"
)

// Defaults for the kernel interfaces Detect reads.
const (
	DefaultProcCgroups = "/proc/cgroups"
	DefaultSlabDir     = "/sys/kernel/slab"
	DefaultMeminfo     = "/proc/meminfo"
)

// Options says where Detect looks. Zero values select the defaults.
type Options struct {
	// Root is the memory hierarchy mount point.
	Root string
	// OSRelease holds the kernel release (/proc/sys/kernel/osrelease).
	OSRelease string
	// ProcCgroups is /proc/cgroups or a copy of it.
	ProcCgroups string
	// SlabDir is /sys/kernel/slab or a directory laid out like it.
	SlabDir string
	// StateDir is verify's state directory, read for an unfinished
	// migration journal and the install record; "" skips both.
	StateDir string
	// ProbeSlabinfo, when true, creates a scratch child of the root, reads
	// its memory.kmem.slabinfo and removes it, to confirm the semantics.
	ProbeSlabinfo bool
	// ProbeIDs, when positive, runs the ID-headroom probe with this cap.
	ProbeIDs int
	// Meminfo is /proc/meminfo, read to keep the probe's memory in bounds.
	Meminfo string
	// Binaries to identify (see binary.Find).
	Binaries binary.Options
	// Logger receives warnings; nil means slog.Default().
	Logger *slog.Logger
}

func (o *Options) defaults() {
	if o.Root == "" {
		o.Root = memcg.DefaultRoot
	}
	if o.OSRelease == "" {
		o.OSRelease = memcg.DefaultOSRelease
	}
	if o.ProcCgroups == "" {
		o.ProcCgroups = DefaultProcCgroups
	}
	if o.SlabDir == "" {
		o.SlabDir = DefaultSlabDir
	}
	if o.Meminfo == "" {
		o.Meminfo = DefaultMeminfo
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Report is everything Detect found.
type Report struct {
	Kernel string `json:"kernel"`
	// Semantics is the kernel's kmem behaviour, decided by reading.
	Semantics memcg.Semantics `json:"semantics"`
	// Semantics310 is Semantics.Leaks(): the kernel behaves like 3.10 /
	// RHEL 7, where kmem accounting leaks memcg IDs and slabinfo EIO proves
	// kmem is off.
	Semantics310 bool `json:"semantics_310"`
	// Slabinfo is how a fresh child of the root read memory.kmem.slabinfo
	// (only with Options.ProbeSlabinfo).
	Slabinfo memcg.Slabinfo `json:"slabinfo,omitempty"`
	// Driver is cgroupfs (kubepods), systemd (kubepods.slice) or none.
	Driver string `json:"driver"`
	// Kubepods is the kubepods cgroup relative to the root, "" if none.
	Kubepods string `json:"kubepods,omitempty"`
	// KubepodsCgroups counts kubepods and every cgroup below it.
	KubepodsCgroups int `json:"kubepods_cgroups"`
	// KmemActive lists the kmem-active cgroups under kubepods (only
	// decidable on 3.10 semantics).
	KmemActive []string `json:"kmem_active"`
	// KmemCauses says for each kmem-active cgroup what activated it, as
	// far as its cgroup shows (KmemCause).
	KmemCauses map[string]string `json:"kmem_causes,omitempty"`
	// DriverNote explains the verdict on a systemd-driver node, which is
	// judged by its cgroups (see systemd.go).
	DriverNote string `json:"driver_note,omitempty"`
	// ProcCgroups is the memory line of /proc/cgroups.
	ProcCgroups ProcCgroupsLine `json:"proc_cgroups"`
	// Leaked is the /sys/kernel/slab alias estimate of leaked memcg IDs.
	Leaked LeakEstimate `json:"leaked"`
	// IDProbe is the result of the ID-headroom probe, if it ran.
	IDProbe *IDProbe `json:"id_probe,omitempty"`
	// Binaries are the kubelet and runtime binaries found.
	Binaries []binary.Binary `json:"binaries"`
	// Leftovers is what earlier verify runs left behind.
	Leftovers Leftovers `json:"leftovers"`
}

// Run detects the node state. It writes nothing unless Options asks for a
// probe.
func Run(o Options) (*Report, error) {
	o.defaults()
	h := memcg.Hierarchy{Root: o.Root}
	r := &Report{KmemActive: []string{}}

	var err error
	if r.Semantics, err = h.ReadNodeSemantics(o.OSRelease); err != nil {
		return nil, err
	}
	r.Kernel = r.Semantics.Release
	if o.ProbeSlabinfo {
		if r.Slabinfo, err = h.ProbeSlabinfo(); err != nil {
			return nil, err
		}
		r.Semantics = r.Semantics.Confirm(r.Slabinfo)
	}
	r.Semantics310 = r.Semantics.Leaks()

	if r.Driver, r.Kubepods, err = h.Driver(); err != nil {
		return nil, err
	}
	if r.Kubepods != "" {
		all, err := h.Walk(r.Kubepods)
		if err != nil {
			return nil, fmt.Errorf("walk kubepods: %w", err)
		}
		r.KubepodsCgroups = len(all)
		if r.Semantics310 {
			if r.KmemActive, err = memcg.KmemActive(h, all, 0); err != nil {
				return nil, err
			}
			if len(r.KmemActive) > 0 {
				r.KmemCauses = kmemCauses(h, r.KmemActive)
			}
		}
	}

	if r.ProcCgroups, err = ReadProcCgroups(o.ProcCgroups); err != nil {
		return nil, err
	}
	if r.Leaked, err = EstimateLeaked(o.SlabDir, h); err != nil {
		return nil, err
	}
	if r.Leftovers, err = FindLeftovers(h, o.StateDir); err != nil {
		return nil, err
	}
	if o.ProbeIDs > 0 {
		if err := CheckProbeMemory(o.Meminfo, min(o.ProbeIDs, MaxProbeIDs)); err != nil {
			return nil, err
		}
		p, err := ProbeIDs(h, o.ProbeIDs, o.Logger)
		if err != nil {
			return nil, err
		}
		r.IDProbe = &p
	}
	if r.Binaries, err = binary.Find(o.Binaries); err != nil {
		return nil, err
	}
	r.DriverNote = r.driverNote()
	return r, nil
}
