// Package detect finds out what state a node is in with respect to the cgroup
// v1 kernel-memory (kmem) accounting leak: whether the kernel has 3.10
// semantics, which cgroup driver the kubelet uses, which cgroups under
// kubepods are kmem-active, how many memcg IDs have leaked, whether the
// kubelet and runc binaries are nokmem builds, and what an earlier verify
// run left behind (a temporary tree, an unfinished migration journal, an
// install without a signature check).
//
// Detect only reads. The kernel's semantics come from the kernel release
// and the root memcg (memcg.ReadSemantics); the two probes that create
// cgroups (a scratch child, the ID-headroom probe) run only when asked.
package detect

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/nokmem/nokmem/verify/binary"
	"github.com/nokmem/nokmem/verify/memcg"
)

// Defaults for the kernel interfaces Detect reads.
const (
	DefaultMemoryRoot  = "/sys/fs/cgroup/memory"
	DefaultOSRelease   = memcg.DefaultOSRelease
	DefaultProcCgroups = "/proc/cgroups"
	DefaultSlabDir     = "/sys/kernel/slab"
	DefaultMeminfo     = "/proc/meminfo"
)

// Cgroup driver names, as the kubelet's --cgroup-driver calls them.
const (
	DriverCgroupfs = "cgroupfs"
	DriverSystemd  = "systemd"
	DriverNone     = "none"
)

// Kubepods directory names for the two drivers.
const (
	KubepodsCgroupfs = "kubepods"
	KubepodsSystemd  = "kubepods.slice"
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
		o.Root = DefaultMemoryRoot
	}
	if o.OSRelease == "" {
		o.OSRelease = DefaultOSRelease
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
	if r.Kernel, err = memcg.ReadKernelRelease(o.OSRelease); err != nil {
		return nil, err
	}
	if r.Semantics, err = h.ReadSemantics(r.Kernel); err != nil {
		return nil, err
	}
	if o.ProbeSlabinfo {
		if r.Slabinfo, err = ProbeSlabinfo(h); err != nil {
			return nil, err
		}
		confirmSemantics(&r.Semantics, r.Slabinfo)
	}
	r.Semantics310 = r.Semantics.Leaks()

	if r.Driver, r.Kubepods, err = Driver(h); err != nil {
		return nil, err
	}
	if r.Kubepods != "" {
		all, err := h.Walk(r.Kubepods)
		if err != nil {
			return nil, fmt.Errorf("walk kubepods: %w", err)
		}
		r.KubepodsCgroups = len(all)
		if r.Semantics310 {
			if r.KmemActive, err = KmemActive(h, all); err != nil {
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

// confirmSemantics checks the read semantics against a fresh child's
// slabinfo: on 3.10 it must read EIO, on a modern kernel it must not.
func confirmSemantics(s *memcg.Semantics, fresh memcg.Slabinfo) {
	eio := fresh == memcg.SlabinfoEIO
	if s.Kind == memcg.Kind310 && !eio || s.Kind == memcg.KindModern && eio {
		s.Reason = fmt.Sprintf("%s, but a fresh child of the root reads %s", s.Reason, fresh)
		s.Kind = memcg.KindUnknown
	}
}

// ScratchName returns a fresh name for a scratch cgroup.
func ScratchName(purpose string) string {
	return "nokmem-" + purpose + "-" + strings.ToLower(rand.Text()[:12])
}

// ProbeSlabinfo creates a scratch child directly under the memory root (the
// root is never kmem-active, so the child is not either), reads its
// memory.kmem.slabinfo and removes it. EIO means 3.10 semantics.
func ProbeSlabinfo(h memcg.Hierarchy) (s memcg.Slabinfo, err error) {
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

// ErrNoKubepods means neither kubepods nor kubepods.slice exists under the root.
var ErrNoKubepods = errors.New("no kubepods cgroup")

// Driver tells the kubelet's cgroup driver from the kubepods directory that
// exists: kubepods (cgroupfs) or kubepods.slice (systemd). With neither it
// returns DriverNone and no error; with both it fails.
func Driver(h memcg.Hierarchy) (driver, kubepods string, err error) {
	cg, err := h.Exists(KubepodsCgroupfs)
	if err != nil {
		return "", "", err
	}
	sd, err := h.Exists(KubepodsSystemd)
	if err != nil {
		return "", "", err
	}
	switch {
	case cg && sd:
		return "", "", fmt.Errorf("both %s and %s exist: cannot tell the cgroup driver", h.Path(KubepodsCgroupfs), h.Path(KubepodsSystemd))
	case cg:
		return DriverCgroupfs, KubepodsCgroupfs, nil
	case sd:
		return DriverSystemd, KubepodsSystemd, nil
	}
	return DriverNone, "", nil
}

// KmemActive returns the cgroups of rels whose memory.kmem.slabinfo is
// readable. Only meaningful on 3.10 semantics, and never for the root.
func KmemActive(h memcg.Hierarchy, rels []string) ([]string, error) {
	active := []string{}
	for _, rel := range rels {
		s, err := h.SlabinfoState(rel)
		if err != nil {
			return nil, err
		}
		// SlabinfoMissing: the cgroup was removed while we walked.
		if s != memcg.SlabinfoEIO && s != memcg.SlabinfoMissing {
			active = append(active, rel)
		}
	}
	return active, nil
}
