package migrate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/nokmem/nokmem/verify/binary"
	"github.com/nokmem/nokmem/verify/memcg"
)

// Precondition errors; each leaves the node untouched.
var (
	ErrKubeletRunning = errors.New("kubelet is running")
	ErrStockKubelet   = errors.New("the installed kubelet is not a nokmem build")
	ErrNotCgroupV1    = errors.New("not a cgroup v1 memory hierarchy")
	ErrSystemdLayout  = errors.New("systemd cgroup driver layout (kubepods.slice)")
	ErrUnknownLayout  = errors.New("unknown cgroup layout")
)

// KubeletPIDs returns the pids whose /proc/<pid>/comm is "kubelet", read
// from procRoot (normally /proc; tests pass a fake table).
func KubeletPIDs(procRoot string) ([]int, error) {
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, fmt.Errorf("scan process table: %w", err)
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue // not a process directory
		}
		b, err := os.ReadFile(filepath.Join(procRoot, e.Name(), "comm"))
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
			continue // exited meanwhile, or a kernel-hidden entry
		}
		if err != nil {
			return nil, fmt.Errorf("scan process table: %w", err)
		}
		if strings.TrimSpace(string(b)) == "kubelet" {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// CheckKubeletStopped fails while a kubelet runs: it would create and remove
// pod cgroups under the tree being replaced.
func CheckKubeletStopped(procRoot string) error {
	pids, err := KubeletPIDs(procRoot)
	if err != nil {
		return err
	}
	if len(pids) > 0 {
		return fmt.Errorf("%w (pid %v): stop it first (systemctl stop kubelet); containers keep running", ErrKubeletRunning, pids)
	}
	return nil
}

// CheckKubeletBuild fails unless the kubelet at path is a nokmem build: a
// stock kubelet would activate kmem again on the fresh tree.
func CheckKubeletBuild(path string, knownSums map[string]string) error {
	if path == "" {
		return fmt.Errorf("%w: no kubelet found in %v", ErrStockKubelet, binary.DefaultSearchDirs)
	}
	b, err := binary.Identify("kubelet", path, binary.Options{KnownSums: knownSums})
	if err != nil {
		return err
	}
	if !b.Nokmem() {
		return fmt.Errorf("%w: %s is %s (%s); install the nokmem kubelet first", ErrStockKubelet, path, b.Kind, b.Reason)
	}
	return nil
}

// CheckLayout requires a cgroup v1 memory hierarchy at the root with the
// kubelet's cgroupfs-driver tree at kubepods.
func CheckLayout(h memcg.Hierarchy, kubepods string) error {
	if _, err := os.Stat(h.Path("", "cgroup.controllers")); err == nil {
		return fmt.Errorf("%w: %s is a cgroup v2 (unified) mount", ErrNotCgroupV1, h.Root)
	}
	if _, err := os.Stat(h.Path("", memcg.Limit)); err != nil {
		return fmt.Errorf("%w: %s has no %s: %w", ErrNotCgroupV1, h.Root, memcg.Limit, err)
	}
	driver, _, err := h.Driver()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnknownLayout, err)
	}
	if driver == memcg.DriverSystemd {
		return fmt.Errorf("%w at %s: with the systemd driver systemd owns these cgroups as slice and scope units, "+
			"and moving them behind its back breaks its accounting; migrate the node to the cgroupfs driver, "+
			"or boot with cgroup.memory=nokmem (RHEL ≥7.8)", ErrSystemdLayout, h.Path(memcg.KubepodsSystemd))
	}
	ok, err := exists(h, kubepods)
	switch {
	case err != nil:
		return fmt.Errorf("%w: %w", ErrUnknownLayout, err)
	case !ok:
		if _, serr := os.Lstat(h.Path(kubepods)); serr == nil {
			return fmt.Errorf("%w: %s exists but is not a directory", ErrUnknownLayout, h.Path(kubepods))
		}
		return fmt.Errorf("%w: %s does not exist (is this a Kubernetes node with the cgroupfs driver?)", memcg.ErrNoKubepods, h.Path(kubepods))
	}
	if _, err := os.Stat(h.Path(kubepods, memcg.Limit)); err != nil {
		return fmt.Errorf("%w: %s is not a memory cgroup: %w", ErrUnknownLayout, h.Path(kubepods), err)
	}
	return nil
}

// ErrNoIDLeak refuses a migration on a kernel without 3.10 memcg
// semantics: there memcg IDs are freed at rmdir, so a migration gives
// nothing back and only moves processes (their charges stay behind where
// move_charge_at_immigrate is gone, ≥6.13).
var ErrNoIDLeak = errors.New("this kernel frees memcg IDs at rmdir (no 3.10 semantics): migrating is pointless here")

// ErrUnknownSemantics refuses a migration on a kernel whose kmem semantics
// memcg cannot decide (detect reports it as unknown): the migration might
// be pointless, and the EIO checks that prove the fresh tree kmem-free
// would mean nothing.
var ErrUnknownSemantics = errors.New("the kernel's kmem semantics are unknown: a migration might be pointless, and slabinfo EIO could not prove the fresh tree kmem-free")

// CheckSemantics refuses, before anything changes, a kernel that
// memcg.ReadNodeSemantics (the decision detect, assert and run share) does
// not find to have 3.10 semantics: ErrNoIDLeak for a modern kernel,
// ErrUnknownSemantics when it is undecided, each with the reason.
func CheckSemantics(s memcg.Semantics) error {
	switch s.Kind {
	case memcg.Kind310:
		return nil
	case memcg.KindModern:
		return fmt.Errorf("%w: %s", ErrNoIDLeak, s.Reason)
	}
	return fmt.Errorf("%w: %s", ErrUnknownSemantics, s.Reason)
}
