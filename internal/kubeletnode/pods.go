package kubeletnode

import (
	"fmt"
	"os"
	"path/filepath"
)

// Pod is a static pod of the test: two busybox containers that sleep,
// on the host network (there is no CNI here).
type Pod struct {
	// Name is the manifest's name; the kubelet names the pod <Name>-<node>.
	Name string
	// QoS is the class the resources give: Guaranteed, Burstable or BestEffort.
	QoS string
	// Memory is each container's memory limit (Guaranteed and Burstable).
	Memory string
}

// Containers are the container names of every test pod.
var Containers = []string{"app", "sidecar"}

// Manifest is the pod's static-pod manifest (JSON is YAML).
func (p Pod) Manifest() string {
	res := `{}`
	switch p.QoS {
	case "Guaranteed":
		res = fmt.Sprintf(`{"requests": {"cpu": "50m", "memory": %q}, "limits": {"cpu": "50m", "memory": %q}}`, p.Memory, p.Memory)
	case "Burstable":
		res = fmt.Sprintf(`{"requests": {"memory": "16Mi"}, "limits": {"memory": %q}}`, p.Memory)
	}
	ctr := func(name string) string {
		return fmt.Sprintf(`{"name": %q, "image": %q, "imagePullPolicy": "Never", "command": ["sleep", "1000000"], "resources": %s}`, name, BusyboxImage, res)
	}
	return fmt.Sprintf(`{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": %q, "namespace": "default"},
 "spec": {"hostNetwork": true, "terminationGracePeriodSeconds": 1, "containers": [%s, %s]}}
`, p.Name, ctr(Containers[0]), ctr(Containers[1]))
}

// Write writes the manifest into dir atomically (the kubelet polls dir).
func (p Pod) Write(dir string) error {
	tmp := filepath.Join(dir, "."+p.Name+".tmp")
	if err := os.WriteFile(tmp, []byte(p.Manifest()), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, p.Name+".yaml"))
}

// Remove removes the manifest from dir; the kubelet then deletes the pod.
func (p Pod) Remove(dir string) error { return os.Remove(filepath.Join(dir, p.Name+".yaml")) }
