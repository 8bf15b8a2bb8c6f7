package migrate_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nokmem/nokmem/internal/memcgtest"
	"github.com/nokmem/nokmem/internal/runcproof"
	"github.com/nokmem/nokmem/internal/testenv"
	"github.com/nokmem/nokmem/verify/memcg"
	"github.com/nokmem/nokmem/verify/migrate"
)

// runcBinary is the default runc (v1.4.4, vendor-pins/matrix.yaml) that the
// build puts in _output; NOKMEM_RUNC overrides it.
func runcBinary() string {
	if p := os.Getenv("NOKMEM_RUNC"); p != "" {
		return p
	}
	p, err := filepath.Abs("../../_output/runc/v1.4.4/runc")
	if err != nil {
		return ""
	}
	return p
}

// busyboxStatic is Debian's busybox-static, the containers' only program.
const busyboxStatic = "/bin/busybox"

// runc runs a runc command and returns its output. The output goes
// through a file, not a pipe: `runc create` hands its stdio to the
// container, which would keep a pipe open for as long as it runs.
func runc(t *testing.T, bin, state string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := os.CreateTemp(t.TempDir(), "runc-out")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--root", state}, args...)...)
	cmd.Stdout, cmd.Stderr = out, out
	runErr := cmd.Run()
	b, err := os.ReadFile(out.Name())
	if err != nil {
		t.Fatal(err)
	}
	if runErr != nil {
		t.Fatalf("runc %s: %v: %s", strings.Join(args, " "), runErr, b)
	}
	return string(b)
}

// TestMigrateRuncContainers starts real runc containers whose cgroupsPath
// lies under the scratch kubepods, migrates the tree, and checks that the
// containers still answer runc state and runc ps, with their init process
// in the same memory cgroup path. It is an end-to-end check of the runc
// that `go tool mage build` ships (docs/testing.md); the migration's own
// behaviour on the real kernel is TestMigrateRealKernel's.
func TestMigrateRuncContainers(t *testing.T) {
	testenv.RequireCgroupV1Memory(t)
	testenv.RequireFile(t, "busybox-static", busyboxStatic)
	bin := runcBinary()
	testenv.RequireFile(t, "runc (go tool mage build)", bin)
	tr := memcgtest.Real(t)
	tr.Kubepods(memcgtest.QoS, 2, 1)
	state := t.TempDir()
	// runc creates the container cgroups in every hierarchy; remove what
	// it leaves of the scratch path outside the memory one (memcgtest removes
	// that), after the containers are deleted (cleanups run last first).
	t.Cleanup(func() {
		subs, err := filepath.Glob("/sys/fs/cgroup/*")
		if err != nil {
			t.Error(err)
			return
		}
		for _, sub := range subs {
			if sub == testenv.MemoryRoot {
				continue
			}
			h := memcg.Hierarchy{Root: sub}
			if ok, _ := h.Exists(tr.Base); ok {
				if err := h.RemoveTree(tr.Base); err != nil {
					t.Errorf("remove runc's cgroups: %v", err)
				}
			}
		}
	})

	type ctr struct{ id, cgroup string }
	var ctrs []ctr
	for i, pod := range []string{"kubepods/burstable/pod0", "kubepods/besteffort/pod1"} {
		c := ctr{id: fmt.Sprintf("%s-%d", tr.Base, i), cgroup: tr.Rel(pod + "/runc")}
		bundle := filepath.Join(t.TempDir(), "bundle")
		spec := runcproof.Spec{CgroupsPath: "/" + c.cgroup, MemoryLimit: 64 << 20, Args: []string{"sleep", "600"}}
		if err := runcproof.Bundle(context.Background(), bin, busyboxStatic, bundle, spec); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			out, err := exec.Command(bin, "--root", state, "delete", "--force", c.id).CombinedOutput()
			if err != nil {
				t.Errorf("runc delete %s: %v: %s", c.id, err, out)
			}
		})
		runc(t, bin, state, "create", "--bundle", bundle, c.id)
		runc(t, bin, state, "start", c.id)
		ctrs = append(ctrs, c)
	}

	h := memcg.Hierarchy{Root: tr.H.Path(tr.Base)}
	e, err := migrate.New(migrate.Config{Hierarchy: h, Kubepods: "kubepods", StateDir: t.TempDir(), Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := e.Migrate()
	if err != nil {
		t.Fatal(err)
	}
	checksOK(t, rep)

	for _, c := range ctrs {
		var st struct {
			Status string `json:"status"`
			Pid    int    `json:"pid"`
		}
		if err := json.Unmarshal([]byte(runc(t, bin, state, "state", c.id)), &st); err != nil {
			t.Fatalf("runc state %s: %v", c.id, err)
		}
		if st.Status != "running" || st.Pid == 0 {
			t.Errorf("runc state %s: %+v, want running", c.id, st)
			continue
		}
		ps := runc(t, bin, state, "ps", "--format", "json", c.id)
		if !strings.Contains(ps, strconv.Itoa(st.Pid)) {
			t.Errorf("runc ps %s = %s, want pid %d", c.id, ps, st.Pid)
		}
		t.Logf("after the migration: runc state %s: %s (pid %d); runc ps: %s", c.id, st.Status, st.Pid, strings.TrimSpace(ps))
		if got := memcgOf(t, fmt.Sprintf("/proc/%d/cgroup", st.Pid)); got != "/"+c.cgroup {
			t.Errorf("container %s init in memory cgroup %s, want /%s", c.id, got, c.cgroup)
		}
	}
}
