// Package testenv decides whether a test that needs a privileged machine
// (root, a cgroup v1 memory hierarchy, FUSE, a runc binary) may skip when the
// machine lacks it. Under CI (NOKMEM_STRICT=1, set by .ci/run) a missing
// capability fails the test instead, so CI can never pass by testing nothing.
package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// StrictEnv is the environment switch that turns skips into failures.
const StrictEnv = "NOKMEM_STRICT"

// Strict reports whether missing capabilities must fail tests.
func Strict() bool { return os.Getenv(StrictEnv) == "1" }

// MemoryRoot is where the cgroup v1 memory hierarchy is mounted on this machine.
const MemoryRoot = "/sys/fs/cgroup/memory"

// unavailable skips the test, or fails it in strict mode.
func unavailable(t testing.TB, what string, err error) {
	t.Helper()
	msg := fmt.Sprintf("%s unavailable: %v", what, err)
	if Strict() {
		t.Fatalf("%s (%s=1: this test must run here)", msg, StrictEnv)
	}
	t.Skip(msg)
}

// RequireRoot needs effective uid 0.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		unavailable(t, "root", fmt.Errorf("euid is %d", os.Geteuid()))
	}
}

// RequireCgroupV1Memory needs root and a writable cgroup v1 memory hierarchy.
func RequireCgroupV1Memory(t testing.TB) {
	t.Helper()
	RequireRoot(t)
	if _, err := os.Stat(MemoryRoot + "/memory.limit_in_bytes"); err != nil {
		unavailable(t, "cgroup v1 memory hierarchy", err)
	}
}

// RequireFUSE needs root and /dev/fuse.
func RequireFUSE(t testing.TB) {
	t.Helper()
	RequireRoot(t)
	if _, err := os.Stat("/dev/fuse"); err != nil {
		unavailable(t, "FUSE", err)
	}
}

// RequireFile needs a file (for example a built runc binary) to exist.
func RequireFile(t testing.TB, what, path string) {
	t.Helper()
	if path == "" {
		unavailable(t, what, errors.New("no path given"))
	}
	if _, err := os.Stat(path); err != nil {
		unavailable(t, what, err)
	}
}

// RequireCommand needs a program on PATH and returns its path.
func RequireCommand(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		unavailable(t, name, err)
	}
	return p
}
