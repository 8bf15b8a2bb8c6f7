package memcg

import (
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
)

// DefaultRoot is where a node mounts its cgroup v1 memory hierarchy.
const DefaultRoot = "/sys/fs/cgroup/memory"

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

// ErrNoKubepods means neither kubepods nor kubepods.slice exists under the root.
var ErrNoKubepods = errors.New("no kubepods cgroup")

// Driver tells the kubelet's cgroup driver from the kubepods directory that
// exists: kubepods (cgroupfs) or kubepods.slice (systemd). With neither it
// returns DriverNone and no error; with both it fails.
func (h Hierarchy) Driver() (driver, kubepods string, err error) {
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

// ScratchName returns a fresh name for a scratch cgroup that verify creates
// and removes again: "nokmem-<purpose>-<12 random characters>".
func ScratchName(purpose string) string {
	return "nokmem-" + purpose + "-" + strings.ToLower(rand.Text()[:12])
}

// SlabinfoReader reads how memory.kmem.slabinfo of a cgroup reads, and
// whether the cgroup exists: Hierarchy, or a wrapper that counts its reads.
type SlabinfoReader interface {
	SlabinfoState(rel string) (Slabinfo, error)
	Exists(rel string) (bool, error)
}

// KmemActive returns the cgroups of rels where kmem accounting is active,
// in order, at most max of them (max ≤ 0: all). It is only meaningful on a
// kernel with 3.10 semantics (Semantics.Leaks): there memory.kmem.slabinfo
// fails with EIO exactly while kmem accounting is off (3.10 mm/memcontrol.c
// mem_cgroup_slabinfo_read returns -EIO unless memcg_can_account_kmem), so
// any other reading means on. A cgroup removed while rels is read is not
// active; one that exists without a slabinfo file cannot be told apart and
// counts as active. Never ask about the root, which reads EIO on 3.10.
func KmemActive(r SlabinfoReader, rels []string, max int) ([]string, error) {
	active := []string{}
	for _, rel := range rels {
		s, err := r.SlabinfoState(rel)
		if err != nil {
			return nil, err
		}
		if s == SlabinfoMissing {
			ok, err := r.Exists(rel)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue // removed meanwhile (a pod went away)
			}
		}
		if s != SlabinfoEIO {
			active = append(active, rel)
			if len(active) == max {
				break
			}
		}
	}
	return active, nil
}
