package detect

import (
	"fmt"
	"path"
	"strings"

	"github.com/nokmem/nokmem/verify/memcg"
)

// With the systemd cgroup driver the kubelet and runc activate kmem
// accounting only when a kernel-memory limit is requested: libcontainer's
// systemd manager (libcontainer/cgroups/systemd/apply_systemd.go, Apply:
// `if c.Resources.KernelMemory != 0 { setKernelMemory(c) }`, vendored by
// kubelet v1.12.4 and in runc v1.0.0-rc5) joins the memory cgroup without
// fs.MemoryGroup.Apply, which is what activates kmem on every new cgroup with
// the cgroupfs driver. kubepods.slice is created by systemd, which never
// writes memory.kmem.limit_in_bytes, so pod cgroups inherit nothing. A
// systemd-driver node is therefore judged by its cgroups: no kmem-active
// cgroup under kubepods.slice means nothing leaks.

// systemdOnRequest is the reason printed for a healthy systemd-driver node.
const systemdOnRequest = "with the systemd cgroup driver kubelet and runc activate kmem only when a kernel-memory limit is requested " +
	"(libcontainer/cgroups/systemd/apply_systemd.go: if c.Resources.KernelMemory != 0 { setKernelMemory(c) }; " +
	"only the cgroupfs driver's fs.MemoryGroup.Apply activates it on every new cgroup)"

// unlimitedKmem: memory.kmem.limit_in_bytes at or above this reads as
// "no limit" (RES_COUNTER_MAX on 3.10, PAGE_COUNTER_MAX pages later).
const unlimitedKmem = int64(1) << 62

// KmemCause says, as far as the cgroup shows, what activated kmem accounting
// on the kmem-active cgroup rel: inherited from its kmem-active parent, a
// kernel-memory limit that was requested, or an activation without a limit
// (a runtime that enables kmem accounting, such as a cgroupfs-driver runc).
func KmemCause(h memcg.Hierarchy, rel string, active map[string]bool) string {
	if parent := path.Dir(rel); parent != "." && active[parent] {
		return "inherited from " + parent
	}
	limit, err := h.ReadInt(rel, memcg.KmemLimit)
	switch {
	case err != nil:
		return "unknown (" + memcg.KmemLimit + ": " + err.Error() + ")"
	case limit < unlimitedKmem:
		return fmt.Sprintf("a kernel-memory limit of %d bytes was requested", limit)
	}
	return "activated without a limit: some runtime wrote " + memcg.KmemLimit + " (as a cgroupfs-driver runc or kubelet does)"
}

// kmemCauses maps each kmem-active cgroup to KmemCause.
func kmemCauses(h memcg.Hierarchy, active []string) map[string]string {
	set := map[string]bool{}
	for _, a := range active {
		set[a] = true
	}
	out := map[string]string{}
	for _, a := range active {
		out[a] = KmemCause(h, a, set)
	}
	return out
}

// systemdProblem is the advice for kmem-active cgroups under kubepods.slice:
// systemd owns them, so this tool does not recreate them.
func (r *Report) systemdProblem() Problem {
	const show = 5
	var list []string
	for i, c := range r.KmemActive {
		if i == show {
			list = append(list, fmt.Sprintf("and %d more", len(r.KmemActive)-show))
			break
		}
		item := c
		if cause := r.KmemCauses[c]; cause != "" {
			item += " (" + cause + ")"
		}
		list = append(list, item)
	}
	n := len(r.KmemActive)
	return Problem{Count: n, Short: fmt.Sprintf("%d kmem-active cgroups (systemd driver)", n),
		Text: fmt.Sprintf("%d kmem-active cgroups under %s (systemd cgroup driver): %s. Their memcg IDs leak when they are removed. "+
			"systemd owns these cgroups, so verify does not recreate them; options: boot with the kernel parameter cgroup.memory=nokmem (needs a reboot), "+
			"or drain the pods of these cgroups and recreate them without a kernel-memory limit (new cgroups start with kmem off, %s)",
			n, r.Kubepods, strings.Join(list, "; "), "because "+systemdOnRequest)}
}

// driverNote explains a systemd-driver node's verdict, "" for other drivers.
func (r *Report) driverNote() string {
	if r.Driver != memcg.DriverSystemd || !r.Semantics310 {
		return ""
	}
	if len(r.KmemActive) > 0 {
		return fmt.Sprintf("%d kmem-active cgroups under %s: see PROBLEM", len(r.KmemActive), r.Kubepods)
	}
	return fmt.Sprintf("0 kmem-active of %d cgroups under %s, and %s: nothing leaks, nothing to migrate", r.KubepodsCgroups, r.Kubepods, systemdOnRequest)
}
