package kubeletnode

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/nokmem/nokmem/internal/runcproof"
)

// Container is one CRI container of the runtime: its identity, its
// process and its memory cgroup.
type Container struct {
	ID, PodUID, PodName, Name string
	// Sandbox is true for a pod's pause container.
	Sandbox bool
	// Attempt is the CRI attempt, the kubelet's restart count.
	Attempt int
	Pid     int
	Status  string
	// Cgroup is the memory cgroup of Pid, relative to the scratch cgroup.
	Cgroup string
}

// info is the part of `ctr containers info` this package reads.
type info struct {
	Labels     map[string]string
	Extensions map[string]struct {
		Value string `json:"value"`
	}
}

// criMetadata is containerd's CRI container metadata extension
// (pkg/cri/store/container Metadata, versioned JSON).
type criMetadata struct {
	Metadata struct {
		Config struct {
			Metadata struct {
				Attempt int `json:"attempt"`
			} `json:"metadata"`
		}
	}
}

// Snapshot lists every container with its task, process and memory cgroup
// (relative to scratch, the scratch cgroup's name).
func (c *Containerd) Snapshot(ctx context.Context, scratch string) (map[string]Container, error) {
	tasks, err := c.Tasks(ctx)
	if err != nil {
		return nil, err
	}
	ids, err := c.Containers(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]Container{}
	for _, id := range ids {
		raw, err := c.Ctr(ctx, "containers", "info", id)
		if err != nil {
			return nil, err
		}
		var in info
		if err := json.Unmarshal([]byte(raw), &in); err != nil {
			return nil, fmt.Errorf("ctr containers info %s: %w", id, err)
		}
		ct := Container{ID: id, PodUID: in.Labels["io.kubernetes.pod.uid"], PodName: in.Labels["io.kubernetes.pod.name"],
			Name: in.Labels["io.kubernetes.container.name"], Sandbox: in.Labels["io.cri-containerd.kind"] == "sandbox"}
		if ext, ok := in.Extensions["io.cri-containerd.container.metadata"]; ok {
			if b, err := base64.StdEncoding.DecodeString(ext.Value); err == nil {
				var md criMetadata
				if json.Unmarshal(b, &md) == nil {
					ct.Attempt = md.Metadata.Config.Metadata.Attempt
				}
			}
		}
		if t, ok := tasks[id]; ok {
			ct.Pid, ct.Status = t.Pid, t.Status
			ct.Cgroup = MemoryCgroup(t.Pid, scratch)
		}
		out[id] = ct
	}
	return out, nil
}

// MemoryCgroup returns pid's memory cgroup relative to the scratch cgroup
// (or the absolute one, when outside it), "" when pid is gone.
func MemoryCgroup(pid int, scratch string) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) == 3 && f[1] == "memory" {
			if rel, ok := strings.CutPrefix(f[2], "/"+scratch+"/"); ok {
				return rel
			}
			return f[2]
		}
	}
	return ""
}

// Limits reads memory.limit_in_bytes of every cgroup under dir/rel, by
// path relative to dir.
func Limits(dir, rel string) (map[string]string, error) {
	out := map[string]string{}
	err := filepath.WalkDir(filepath.Join(dir, rel), func(p string, e os.DirEntry, err error) error {
		if err != nil || !e.IsDir() {
			return err
		}
		v, err := os.ReadFile(filepath.Join(p, "memory.limit_in_bytes"))
		if err != nil {
			return err
		}
		r, _ := filepath.Rel(dir, p)
		out[r] = strings.TrimSpace(string(v))
		return nil
	})
	return out, err
}

// KmemWrites reads the writes to memory.kmem.limit_in_bytes in the strace
// logs files.
func KmemWrites(files []string) ([]runcproof.Write, error) {
	var all []runcproof.Write
	sort.Strings(files)
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, err
		}
		ws, err := runcproof.KmemWrites(fh)
		fh.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		all = append(all, ws...)
	}
	return all, nil
}
