package enginetest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nokmem/nokmem/internal/testenv"
)

// Debian's Docker 20.10 programs. The full paths matter: a newer docker
// client may be first on PATH.
const (
	DockerdBin = "/usr/sbin/dockerd"
	DockerCLI  = "/usr/bin/docker"
)

// RuntimeName is the name our runc is registered under in dockerd.
const RuntimeName = "nokmem"

// Dockerd is a dockerd started by a test, on a Containerd of the test.
type Dockerd struct {
	// Dir holds the socket, data root, exec root, daemon.json and the log.
	Dir      string
	Socket   string
	DataRoot string
	ExecRoot string
	// Namespace is the containerd namespace of its containers.
	Namespace  string
	Containerd *Containerd
	// Started is how long dockerd took to answer.
	Started time.Duration

	d       *daemon
	env     []string
	created []string
}

// hardCodedPaths are what dockerd 20.10 creates outside its scratch
// directories, with no flag to move them: its identity key
// /etc/docker/key.json (cmd/dockerd/daemon_unix.go, getDaemonConfDir) and
// the plugin exec root /run/docker/plugins (daemon/daemon_unix.go,
// getPluginExecRoot). The cleanup removes those that did not exist before.
var hardCodedPaths = []string{"/etc/docker/key.json", "/run/docker/plugins", "/run/docker"}

// missing returns the paths that do not exist.
func missing(paths []string) []string {
	var out []string
	for _, p := range paths {
		if _, err := os.Lstat(p); os.IsNotExist(err) {
			out = append(out, p)
		}
	}
	return out
}

// StartDockerd starts Debian's dockerd on scratch directories, using the
// containerd c (its namespace "nokmem-test-moby"), with c.Runc added as the
// runtime "nokmem" and made the default, the cgroupfs driver, c's scratch
// cgroup as cgroup parent, an empty daemon.json of its own (never
// /etc/docker/daemon.json), no bridge, no iptables and no IP masquerading,
// and its own oom_score_adj left alone (this machine refuses to lower it).
// The cleanup removes every container, stops dockerd by pid and removes
// its mounts (before c's cleanup, which was registered first).
func StartDockerd(t testing.TB, c *Containerd) *Dockerd {
	t.Helper()
	testenv.RequireFile(t, "dockerd (Debian docker.io)", DockerdBin)
	testenv.RequireFile(t, "docker (Debian docker.io)", DockerCLI)
	dir := shortTempDir(t, "dockerd")
	d := &Dockerd{
		Dir:        dir,
		Socket:     filepath.Join(dir, "docker.sock"),
		DataRoot:   filepath.Join(dir, "data"),
		ExecRoot:   filepath.Join(dir, "exec"),
		Namespace:  "nokmem-test-moby",
		Containerd: c,
		env:        append(os.Environ(), "DOCKER_CONFIG="+filepath.Join(dir, "cli")),
	}
	conf := filepath.Join(dir, "daemon.json")
	if err := os.WriteFile(conf, []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{
		"--config-file", conf,
		"--host", "unix://" + d.Socket,
		"--data-root", d.DataRoot,
		"--exec-root", d.ExecRoot,
		"--pidfile", filepath.Join(dir, "docker.pid"),
		"--containerd", c.Socket,
		"--containerd-namespace", d.Namespace,
		"--containerd-plugins-namespace", d.Namespace + "-plugins",
		"--add-runtime", RuntimeName + "=" + c.Runc,
		"--default-runtime", RuntimeName,
		"--exec-opt", "native.cgroupdriver=cgroupfs",
		"--cgroup-parent", c.Cgroup.Parent(),
		"--bridge=none", "--iptables=false", "--ip-masq=false",
		"--oom-score-adjust=0",
		"--storage-driver=overlay2",
	}
	d.created = missing(hardCodedPaths)
	start := time.Now()
	dd, err := startDaemon(t, filepath.Join(dir, "dockerd.log"), func() error {
		_, err := d.docker("version")
		return err
	}, 60*time.Second, DockerdBin, args...)
	if dd != nil {
		d.d = dd
		t.Cleanup(func() { d.cleanup(t) })
	}
	if err != nil {
		t.Fatalf("dockerd: %v", err)
	}
	d.Started = time.Since(start)
	return d
}

// docker runs Debian's docker client against this dockerd.
func (d *Dockerd) docker(args ...string) (string, error) {
	return runClient(d.env, DockerCLI, []string{"--host", "unix://" + d.Socket}, args)
}

// Docker runs the docker client and fails the test on error.
func (d *Dockerd) Docker(t testing.TB, args ...string) string {
	t.Helper()
	out, err := d.docker(args...)
	if err != nil {
		t.Fatalf("%v\ndockerd's log ends:\n%s", err, d.d.tail())
	}
	return out
}

// DockerErr runs the docker client and returns its error.
func (d *Dockerd) DockerErr(args ...string) (string, error) { return d.docker(args...) }

// Pid is dockerd's process id.
func (d *Dockerd) Pid() int { return d.d.pid() }

// Log is dockerd's log so far.
func (d *Dockerd) Log() string { return d.d.all() }

// Inspect decodes `docker inspect id` into v.
func (d *Dockerd) Inspect(t testing.TB, id string, v any) {
	t.Helper()
	out := d.Docker(t, "inspect", id)
	var list []json.RawMessage
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 1 {
		t.Fatalf("docker inspect %s: %v: %s", id, err, out)
	}
	if err := json.Unmarshal(list[0], v); err != nil {
		t.Fatalf("docker inspect %s: %v", id, err)
	}
}

func (d *Dockerd) cleanup(t testing.TB) {
	t.Helper()
	if ids, err := d.docker("ps", "-aq"); err == nil {
		for _, id := range strings.Fields(ids) {
			if _, err := d.docker("rm", "-f", id); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	}
	if err := d.d.stop(); err != nil {
		t.Errorf("cleanup: stop dockerd: %v", err)
	}
	// In order: the key, then the plugin dir, then its parent if empty.
	for _, p := range d.created {
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			t.Errorf("cleanup: dockerd's %s: %v", p, err)
		}
	}
	if err := unmountUnder(d.Dir); err != nil {
		t.Errorf("cleanup: %v", err)
	}
}
