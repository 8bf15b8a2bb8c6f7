package kubeletnode

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Kubelet is a standalone kubelet (no API server) on the scratch runtime,
// started and stopped by two shell scripts the test writes, StartScript and
// StopScript, which are also verify run's --start-cmd and --stop-cmd. The
// kubelet runs under strace, one log per start in TraceDir.
type Kubelet struct {
	Dir string
	// Binary is the node's kubelet path (an install replaces the file).
	Binary string
	// Port, ReadOnlyPort and HealthzPort are free loopback ports.
	Port, ReadOnlyPort, HealthzPort int
	// NodeName is the kubelet's --hostname-override.
	NodeName string
	// ManifestDir holds the static pods.
	ManifestDir string
	// TraceDir receives kubelet.<n>.strace, one per start.
	TraceDir string
	// StartScript and StopScript start and stop this kubelet.
	StartScript, StopScript string
}

// freePort returns a free TCP port on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startScript launches the kubelet in its own session and its own mount
// namespace under strace (--seccomp-bpf: only openat and write stop the
// kubelet), output appended to kubelet.log, and records strace's pid. The
// namespace first drops its copies of the test's kmem views (fuse.kmem310):
// such a copy would keep a view's FUSE connection alive after the test
// unmounted it. In that namespace the kernel tunables the kubelet would otherwise set on the
// shared machine (pkg/kubelet/cm container_manager_linux.go
// setupKernelTunables: vm.overcommit_memory=1, kernel.panic=10,
// kernel.panic_on_oops=1, ...) are scratch files that already hold the
// values it wants, so it reads them and writes nothing.
const startScript = `#!/bin/sh
# Written by internal/kubeletnode: starts the test's kubelet.
set -e
cd %[1]s
n=$(ls %[2]s | wc -l)
setsid unshare --mount --propagation private -- sh -ec '
awk '\''$3 == "fuse.kmem310" {print $2}'\'' /proc/self/mounts | while read -r m; do umount -l "$m"; done
for f in %[5]s; do mount --bind %[1]s/sysctl/$(echo $f | tr / _) /proc/sys/$f; done
exec strace -f --seccomp-bpf -y -qq -s 64 -e trace=openat,write -o %[2]s/kubelet.'$n'.strace -- %[3]s %[4]s' >>%[1]s/kubelet.log 2>&1 </dev/null &
echo $! > %[1]s/strace.pid
`

// kernelTunables are the sysctls the kubelet 1.12 sets when they differ,
// with its values (pkg/kubelet/cm/container_manager_linux.go setupKernelTunables).
var kernelTunables = map[string]string{
	"vm/overcommit_memory":      "1",
	"vm/panic_on_oom":           "0",
	"kernel/panic":              "10",
	"kernel/panic_on_oops":      "1",
	"kernel/keys/root_maxkeys":  "1000000",
	"kernel/keys/root_maxbytes": "25000000",
}

// stopScript stops the kubelet that startScript started: SIGTERM to the
// kubelet (strace's child), then waits until it is gone (SIGKILL after 30 s).
const stopScript = `#!/bin/sh
# Written by internal/kubeletnode: stops the test's kubelet.
p=$(cat %[1]s/strace.pid)
k=$(cat /proc/$p/task/*/children 2>/dev/null)
[ -n "$k" ] || exit 0
kill -TERM $k
i=0
while readlink /proc/$k/exe >/dev/null 2>&1; do
  i=$((i+1))
  [ $i -eq 600 ] && kill -KILL $k
  sleep 0.05
done
`

// NewKubelet prepares the kubelet's directories, ports and scripts. cgroupRoot
// is the scratch cgroup (/nokmem-test-<random>), endpoint the runtime socket.
func NewKubelet(dir, binary, cgroupRoot, endpoint, nodeName string) (*Kubelet, error) {
	k := &Kubelet{Dir: dir, Binary: binary, NodeName: nodeName, ManifestDir: filepath.Join(dir, "manifests"), TraceDir: filepath.Join(dir, "trace")}
	for _, d := range []string{k.ManifestDir, k.TraceDir, filepath.Join(dir, "root"), filepath.Join(dir, "pki"), filepath.Join(dir, "volume-plugins"), filepath.Join(dir, "seccomp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	for _, p := range []*int{&k.Port, &k.ReadOnlyPort, &k.HealthzPort} {
		var err error
		if *p, err = freePort(); err != nil {
			return nil, err
		}
	}
	flags := []string{
		"--container-runtime=remote",
		"--container-runtime-endpoint=unix://" + endpoint,
		"--image-service-endpoint=unix://" + endpoint,
		"--runtime-request-timeout=2m",
		"--cgroup-driver=cgroupfs",
		"--cgroup-root=" + cgroupRoot,
		"--cgroups-per-qos=true",
		"--pod-manifest-path=" + k.ManifestDir,
		"--file-check-frequency=1s",
		"--root-dir=" + filepath.Join(dir, "root"),
		"--cert-dir=" + filepath.Join(dir, "pki"),
		"--volume-plugin-dir=" + filepath.Join(dir, "volume-plugins"),
		"--seccomp-profile-root=" + filepath.Join(dir, "seccomp"),
		"--address=127.0.0.1",
		"--port=" + strconv.Itoa(k.Port),
		"--read-only-port=" + strconv.Itoa(k.ReadOnlyPort),
		"--healthz-bind-address=127.0.0.1",
		"--healthz-port=" + strconv.Itoa(k.HealthzPort),
		"--hostname-override=" + nodeName,
		"--pod-infra-container-image=" + PauseImage,
		"--fail-swap-on=false",
		"--cloud-provider=",
		// No KUBE-MARK-DROP chains in the shared machine's iptables.
		"--make-iptables-util-chains=false",
		// The shared machine's disk and memory are not this node's to
		// evict for, nor are the local images to be collected.
		"--eviction-hard=",
		"--image-gc-high-threshold=100",
		"--image-gc-low-threshold=99",
		"--v=2",
	}
	var tunables []string
	for name, v := range kernelTunables {
		if err := os.MkdirAll(filepath.Join(dir, "sysctl"), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, "sysctl", strings.ReplaceAll(name, "/", "_")), []byte(v+"\n"), 0o644); err != nil {
			return nil, err
		}
		tunables = append(tunables, name)
	}
	sort.Strings(tunables)
	k.StartScript, k.StopScript = filepath.Join(dir, "start-kubelet.sh"), filepath.Join(dir, "stop-kubelet.sh")
	if err := os.WriteFile(k.StartScript, []byte(fmt.Sprintf(startScript, dir, k.TraceDir, binary, strings.Join(flags, " "), strings.Join(tunables, " "))), 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(k.StopScript, []byte(fmt.Sprintf(stopScript, dir)), 0o755); err != nil {
		return nil, err
	}
	return k, nil
}

// HealthzURL is the kubelet's healthz endpoint.
func (k *Kubelet) HealthzURL() string {
	return fmt.Sprintf("http://127.0.0.1:%d/healthz", k.HealthzPort)
}

// Start runs the start script and waits until healthz answers 200; it
// returns how long that took.
func (k *Kubelet) Start(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	if out, err := exec.CommandContext(ctx, k.StartScript).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("%s: %w: %s", k.StartScript, err, out)
	}
	for !Healthy(k.HealthzURL()) {
		if time.Since(start) > 2*time.Minute {
			return 0, fmt.Errorf("kubelet healthz %s not 200 after 2m: %s", k.HealthzURL(), tail(filepath.Join(k.Dir, "kubelet.log"), 3000))
		}
		if k.Pid() == 0 && time.Since(start) > 5*time.Second {
			return 0, fmt.Errorf("kubelet exited: %s", tail(filepath.Join(k.Dir, "kubelet.log"), 3000))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start), nil
}

// Stop runs the stop script.
func (k *Kubelet) Stop(ctx context.Context) error {
	if out, err := exec.CommandContext(ctx, k.StopScript).CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w: %s", k.StopScript, err, out)
	}
	return nil
}

// Pid returns the running kubelet's pid (strace's child whose executable
// is the node's kubelet binary), 0 if none. Before the start script execs
// strace, its shell's children are awk and mount, which do not count.
func (k *Kubelet) Pid() int {
	b, err := os.ReadFile(filepath.Join(k.Dir, "strace.pid"))
	if err != nil {
		return 0
	}
	sp := strings.TrimSpace(string(b))
	kids, _ := filepath.Glob("/proc/" + sp + "/task/*/children")
	for _, f := range kids {
		c, _ := os.ReadFile(f)
		for _, s := range strings.Fields(string(c)) {
			pid, err := strconv.Atoi(s)
			if err != nil || !Alive(pid) {
				continue
			}
			if exe, err := os.Readlink("/proc/" + s + "/exe"); err == nil && strings.TrimSuffix(exe, " (deleted)") == k.Binary {
				return pid
			}
		}
	}
	return 0
}

// Healthy reports whether url answers 200 within 1 s.
func Healthy(url string) bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// RunningPod is one pod of the kubelet's /runningpods/: the pods the
// kubelet finds in the runtime (pkg/kubelet/server/server.go
// getRunningPods), with the names of their running containers.
type RunningPod struct {
	Name, UID  string
	Containers []string
}

// RunningPods reads /runningpods/ on the kubelet's main port (HTTPS; the
// read-only port serves no debug handlers, and a kubelet without API
// server fills in no pod status on /pods). The server certificate is the
// one the kubelet made for itself in its --cert-dir, for the node name.
func (k *Kubelet) RunningPods() ([]RunningPod, error) {
	crt, err := os.ReadFile(filepath.Join(k.Dir, "pki", "kubelet.crt"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(crt) {
		return nil, fmt.Errorf("%s: no certificate", filepath.Join(k.Dir, "pki", "kubelet.crt"))
	}
	c := http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: k.NodeName}}}
	resp, err := c.Get(fmt.Sprintf("https://127.0.0.1:%d/runningpods/", k.Port))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var list struct {
		Items []struct {
			Metadata struct{ Name, UID string }
			Spec     struct{ Containers []struct{ Name string } }
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return nil, fmt.Errorf("kubelet /runningpods/: %s: %w", resp.Status, err)
	}
	var pods []RunningPod
	for _, it := range list.Items {
		p := RunningPod{Name: it.Metadata.Name, UID: it.Metadata.UID}
		for _, c := range it.Spec.Containers {
			p.Containers = append(p.Containers, c.Name)
		}
		pods = append(pods, p)
	}
	return pods, nil
}

// Log returns the tail of the kubelet's log.
func (k *Kubelet) Log(n int) string { return tail(filepath.Join(k.Dir, "kubelet.log"), n) }
