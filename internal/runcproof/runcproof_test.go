package runcproof

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nokmem/nokmem/internal/testenv"
)

// Where the build puts the binaries, seen from this package: the default
// (maintained) runc, and rc5 patched and unpatched, whose proof shows that
// the check fails for a runc that activates kmem. The environment
// variables override them (for a build elsewhere).
var (
	maintainedRunc = binPath("NOKMEM_RUNC_MAINTAINED", "../../_output/runc/"+maintainedVersion+"/runc")
	patchedRunc    = binPath("NOKMEM_RUNC", "../../_output/runc/v1.0.0-rc5/runc")
	unpatchedRunc  = binPath("NOKMEM_RUNC_UNPATCHED", "../../_build/runc/v1.0.0-rc5-unpatched/runc")
)

// maintainedVersion is the default runc of vendor-pins/matrix.yaml.
const maintainedVersion = "v1.4.4"

const busybox = "/bin/busybox" // Debian's busybox-static

func binPath(env, def string) string {
	if p := os.Getenv(env); p != "" {
		return p
	}
	p, err := filepath.Abs(def)
	if err != nil {
		return def
	}
	return p
}

func TestKmemWrites(t *testing.T) {
	log := strings.Join([]string{
		`101 write(7</sys/fs/cgroup/memory/nokmem-test-1/ctr/memory.kmem.limit_in_bytes>, "1", 1) = 1`,
		`101 write(7</sys/fs/cgroup/memory/nokmem-test-1/ctr/memory.kmem.limit_in_bytes>, "-1", 2) = 2`,
		`101 write(8</sys/fs/cgroup/memory/nokmem-test-1/ctr/memory.limit_in_bytes>, "67108864", 8) = 8`,
		`102 write(3<pipe:[1234]>, "{\"type\":\"procReady\"}", 20) = 20`,
		`101 write(9</sys/fs/cgroup/memory/nokmem-test-1/ctr/memory.kmem.limit_in_bytes>, "33554432", 8) = 8`,
		`101 +++ exited with 0 +++`,
	}, "\n")
	got, err := KmemWrites(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	var values []string
	for _, w := range got {
		values = append(values, w.Value)
		if !strings.HasSuffix(w.Path, "/ctr/"+KmemLimitFile) {
			t.Errorf("path %q", w.Path)
		}
	}
	if want := []string{"1", "-1", "33554432"}; !slices.Equal(values, want) {
		t.Fatalf("values %q, want %q", values, want)
	}
	limits, err := FileWrites(strings.NewReader(log), "memory.limit_in_bytes")
	if err != nil || len(limits) != 1 || limits[0].Value != "67108864" {
		t.Fatalf("memory.limit_in_bytes writes %+v (%v), want the one 67108864", limits, err)
	}
}

// TestKmemActivation creates containers with a memory limit in a scratch
// cgroup and records runc's writes to memory.kmem.limit_in_bytes: the
// unpatched rc5 activates kmem (writes 1, then -1) for every container, the
// patched one only when linux.resources.memory.kernel is set, and then the
// explicit limit reaches the file. Everything created is removed again.
func TestKmemActivation(t *testing.T) {
	testenv.RequireCgroupV1Memory(t)
	strace := testenv.RequireCommand(t, "strace")
	testenv.RequireFile(t, "busybox-static", busybox)
	testenv.RequireFile(t, "patched runc (go tool mage runc:build v1.0.0-rc5)", patchedRunc)
	testenv.RequireFile(t, "unpatched runc (go tool mage runc:build v1.0.0-rc5)", unpatchedRunc)

	const kernelLimit = 32 << 20
	tests := []struct {
		name        string
		runc        string
		kernelLimit int64
		// wantActivation: runc writes 1 then -1 (EnableKernelMemoryAccounting).
		wantActivation bool
	}{
		{"unpatched, memory limit only", unpatchedRunc, 0, true},
		{"patched, memory limit only", patchedRunc, 0, false},
		{"patched, explicit kernel memory limit", patchedRunc, kernelLimit, true},
		{"unpatched, explicit kernel memory limit", unpatchedRunc, kernelLimit, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			checkVersion(t, tt.runc, "1.0.0-rc5", "4fc53a81fb7c994640722ac585fa9ca548971871", tt.runc == patchedRunc)

			scratch := scratchCgroup(t)
			stateRoot := filepath.Join(t.TempDir(), "state")
			bundle := filepath.Join(t.TempDir(), "bundle")
			id := "nokmem-proof-" + filepath.Base(scratch)
			spec := Spec{
				CgroupsPath: "/" + filepath.Base(scratch) + "/ctr",
				MemoryLimit: 64 << 20,
				KernelLimit: tt.kernelLimit,
				Args:        []string{"true"},
			}
			if err := Bundle(ctx, tt.runc, busybox, bundle, spec); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { forceDelete(t, tt.runc, stateRoot, id) })

			// create runs under strace; start lets the container's
			// process (true) run and exit, so that strace, which follows
			// runc init too, ends.
			tr, err := StartTraced(ctx, strace, t.TempDir(), tt.runc,
				"--root", stateRoot, "create", "--bundle", bundle, id)
			if err != nil {
				t.Fatal(err)
			}
			waitStatus(t, tt.runc, stateRoot, id, "created")
			ctr := filepath.Join(scratch, "ctr")
			assertFile(t, filepath.Join(ctr, "memory.limit_in_bytes"), strconv.Itoa(64<<20))
			run(t, tt.runc, "--root", stateRoot, "start", id)
			writes, err := tr.Wait()
			if err != nil {
				t.Fatal(err)
			}
			waitStatus(t, tt.runc, stateRoot, id, "stopped")

			var values []string
			for _, w := range writes {
				if w.Path != filepath.Join(ctr, KmemLimitFile) {
					t.Errorf("write to a kmem file outside the container's cgroup: %s", w.Path)
				}
				values = append(values, w.Value)
			}
			t.Logf("writes to %s: %q", KmemLimitFile, values)
			activated := len(values) >= 2 && values[0] == "1" && values[1] == "-1"
			if activated != tt.wantActivation {
				t.Errorf("kmem activation: got writes %q, want activation=%v", values, tt.wantActivation)
			}
			if tt.kernelLimit == 0 && !tt.wantActivation && len(values) != 0 {
				t.Errorf("runc wrote %q to %s although no kernel memory limit was set", values, KmemLimitFile)
			}
			if tt.kernelLimit != 0 && !slices.Contains(values, strconv.FormatInt(tt.kernelLimit, 10)) {
				t.Errorf("explicit kernel memory limit %d never written; writes %q", tt.kernelLimit, values)
			}

			// runc delete removes the container, its cgroups and its state.
			run(t, tt.runc, "--root", stateRoot, "delete", id)
			for _, sub := range cgroupHierarchies(t) {
				if _, err := os.Stat(filepath.Join(sub, filepath.Base(scratch), "ctr")); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("runc delete left cgroup %s/%s/ctr behind (%v)", sub, filepath.Base(scratch), err)
				}
			}
			if _, err := os.Stat(filepath.Join(stateRoot, id)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("runc delete left state %s behind (%v)", filepath.Join(stateRoot, id), err)
			}
		})
	}
}

// TestMaintainedRuncNeverWritesKmem runs real containers with the default
// runc under strace (create, start, update while running, delete) in a
// scratch cgroup, with a memory limit and with an explicit kernel memory
// limit too: it never writes memory.kmem.limit_in_bytes (runc rc94+ has
// no kmem writer, and ignores linux.resources.memory.kernel), while the
// same traces do see its writes to memory.limit_in_bytes, so a kmem write
// could not hide. The same check run on unpatched rc5 sees its activation
// ("1", "-1"): the proof can fail.
func TestMaintainedRuncNeverWritesKmem(t *testing.T) {
	testenv.RequireCgroupV1Memory(t)
	strace := testenv.RequireCommand(t, "strace")
	testenv.RequireFile(t, "busybox-static", busybox)
	testenv.RequireFile(t, "runc "+maintainedVersion+" (go tool mage runc:build "+maintainedVersion+")", maintainedRunc)
	checkVersion(t, maintainedRunc, strings.TrimPrefix(maintainedVersion, "v"), "", true)

	for _, kernelLimit := range []int64{0, 32 << 20} {
		t.Run("kernel limit "+strconv.FormatInt(kernelLimit, 10), func(t *testing.T) {
			for step, kmem := range traceLifecycle(t, strace, maintainedRunc, kernelLimit) {
				if len(kmem) != 0 {
					t.Errorf("runc %s %s wrote %s: %+v", maintainedVersion, step, KmemLimitFile, kmem)
				}
			}
		})
	}
	t.Run("the check sees unpatched rc5's activation", func(t *testing.T) {
		testenv.RequireFile(t, "unpatched runc (go tool mage runc:build v1.0.0-rc5)", unpatchedRunc)
		kmem := traceLifecycle(t, strace, unpatchedRunc, 0)["create"]
		if len(kmem) < 2 || kmem[0].Value != "1" || kmem[1].Value != "-1" {
			t.Errorf("unpatched rc5 create: kmem writes %+v, want the activation \"1\", \"-1\"", kmem)
		}
	})
}

// traceLifecycle runs one container (sleep 3, a 64 MiB memory limit, and
// kernelLimit when not 0) through create and update --memory 96M
// --kernel-memory 48M, each under strace, then start, stop and delete, and
// returns each traced step's writes to memory.kmem.limit_in_bytes. It fails
// the test if a trace misses the step's write to memory.limit_in_bytes.
func traceLifecycle(t *testing.T, strace, runc string, kernelLimit int64) map[string][]Write {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	scratch := scratchCgroup(t)
	stateRoot := filepath.Join(t.TempDir(), "state")
	bundle := filepath.Join(t.TempDir(), "bundle")
	id := "nokmem-proof-" + filepath.Base(scratch)
	spec := Spec{CgroupsPath: "/" + filepath.Base(scratch) + "/ctr", MemoryLimit: 64 << 20, KernelLimit: kernelLimit, Args: []string{"sleep", "3"}}
	if err := Bundle(ctx, runc, busybox, bundle, spec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { forceDelete(t, runc, stateRoot, id) })
	create, err := StartTraced(ctx, strace, t.TempDir(), runc, "--root", stateRoot, "create", "--bundle", bundle, id)
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, runc, stateRoot, id, "created")
	ctr := filepath.Join(scratch, "ctr")
	assertFile(t, filepath.Join(ctr, "memory.limit_in_bytes"), strconv.Itoa(64<<20))
	run(t, runc, "--root", stateRoot, "start", id)
	waitStatus(t, runc, stateRoot, id, "running")
	update, err := StartTraced(ctx, strace, t.TempDir(), runc, "--root", stateRoot, "update", "--memory", strconv.Itoa(96<<20), "--kernel-memory", strconv.Itoa(48<<20), id)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]Write{}
	for _, step := range []struct {
		name  string
		tr    *Trace
		limit string
	}{{"update", update, strconv.Itoa(96 << 20)}, {"create", create, strconv.Itoa(64 << 20)}} {
		kmem, err := step.tr.Wait()
		if err != nil {
			t.Fatal(err)
		}
		limits, err := step.tr.Writes("memory.limit_in_bytes")
		if err != nil {
			t.Fatal(err)
		}
		limitFile := filepath.Join(ctr, "memory.limit_in_bytes")
		if !slices.ContainsFunc(limits, func(w Write) bool { return w.Path == limitFile && w.Value == step.limit }) {
			t.Errorf("runc %s: the trace shows no write of %s to %s (writes %+v): it would not show a kmem write either", step.name, step.limit, limitFile, limits)
		}
		t.Logf("runc %s: writes to %s %q, %d to memory.limit_in_bytes", step.name, KmemLimitFile, values(kmem), len(limits))
		out[step.name] = kmem
	}
	waitStatus(t, runc, stateRoot, id, "stopped")
	run(t, runc, "--root", stateRoot, "delete", id)
	if _, err := os.Stat(ctr); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("runc delete left cgroup %s behind (%v)", ctr, err)
	}
	return out
}

func values(ws []Write) []string {
	var vs []string
	for _, w := range ws {
		vs = append(vs, w.Value)
	}
	return vs
}

// waitStatus polls `runc state` until the container has the status.
func waitStatus(t *testing.T, runc, stateRoot, id, status string) {
	t.Helper()
	var last string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		out, err := exec.Command(runc, "--root", stateRoot, "state", id).Output()
		if err != nil {
			last = err.Error()
			continue
		}
		var st struct {
			Status string `json:"status"`
		}
		if err := json.Unmarshal(out, &st); err != nil {
			t.Fatalf("runc state %s: %v", id, err)
		}
		if last = st.Status; last == status {
			return
		}
	}
	t.Fatalf("container %s: status %q, want %q", id, last, status)
}

// checkVersion makes sure each slot holds the right build: runc version
// (without v) at commit ("" when the build stamps none), with the
// patch-set marker exactly when marker is set.
func checkVersion(t *testing.T, runc, version, commit string, marker bool) {
	t.Helper()
	out, err := exec.Command(runc, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --version: %v: %s", runc, err, out)
	}
	v := string(out)
	if !strings.HasPrefix(v, "runc version "+version+"\n") && !strings.HasPrefix(v, "runc version "+version+"+") || commit != "" && !strings.Contains(v, "commit: "+commit) {
		t.Fatalf("%s is not runc %s at %q: %s", runc, version, commit, v)
	}
	if got := strings.Contains(v, "+nokmem."); got != marker {
		t.Fatalf("%s: patch-set marker present=%v, want %v: %s", runc, got, marker, v)
	}
}

// scratchCgroup creates /sys/fs/cgroup/memory/nokmem-test-<random>; the
// cleanup removes it, and the same name in every other hierarchy where runc
// created it, leaves first.
func scratchCgroup(t *testing.T) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	name := "nokmem-test-" + hex.EncodeToString(b)
	path := filepath.Join(testenv.MemoryRoot, name)
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatalf("scratch cgroup: %v", err)
	}
	t.Cleanup(func() {
		for _, sub := range cgroupHierarchies(t) {
			for _, dir := range []string{filepath.Join(sub, name, "ctr"), filepath.Join(sub, name)} {
				if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
					t.Errorf("remove cgroup %s: %v", dir, err)
				}
			}
		}
	})
	return path
}

// cgroupHierarchies lists the hierarchies mounted under /sys/fs/cgroup:
// every cgroup v1 one and the cgroup2 mount (unified), where runc 1.x
// creates the container's cgroup too.
func cgroupHierarchies(t *testing.T) []string {
	t.Helper()
	subs, err := filepath.Glob("/sys/fs/cgroup/*")
	if err != nil {
		t.Fatal(err)
	}
	return subs
}

// forceDelete removes the container if a failed test left it behind.
func forceDelete(t *testing.T, runc, stateRoot, id string) {
	if _, err := os.Stat(filepath.Join(stateRoot, id)); errors.Is(err, os.ErrNotExist) {
		return
	}
	if out, err := exec.Command(runc, "--root", stateRoot, "delete", "--force", id).CombinedOutput(); err != nil {
		t.Errorf("cleanup: runc delete --force %s: %v: %s", id, err, out)
	}
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

func assertFile(t *testing.T, path, want string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("container cgroup: %v", err)
	}
	if got := strings.TrimSpace(string(b)); got != want {
		t.Fatalf("%s = %s, want %s", path, got, want)
	}
}
