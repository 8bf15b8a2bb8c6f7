// Package enginetest runs real container engines from Debian (containerd,
// dockerd) on this machine for tests, configured to call the runc that the
// default node bundle holds: each daemon gets its own socket, root and state
// directories under a test's temporary directory, the cgroupfs driver and a
// cgroup parent under a scratch cgroup nokmem-test-<random> that the test
// creates and removes. Cleanup, which runs even when the test fails, removes
// the containers, stops the daemon by its pid, ends the shims it started
// (found by the daemon's own socket path in their command line, ended by
// pid), and removes the state and the scratch cgroups.
//
// It is shared by the engine tests (this package) and by the kubelet
// harness, which adds the CRI plugin (Containerd.CRI).
package enginetest

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/nokmem/nokmem/internal/bundle"
	"github.com/nokmem/nokmem/internal/testenv"
)

// Busybox is Debian's busybox-static: the one binary of the test images.
const Busybox = "/bin/busybox"

// RuncEnv overrides the runc under test (development only: by default the
// tests take the runc of the default bundle, as a node would).
const RuncEnv = "NOKMEM_ENGINE_RUNC"

// Runc is the runc under test.
type Runc struct {
	// Path is the binary.
	Path string
	// Version is what the bundle's manifest says it is (or "RuncEnv
	// override" when taken from the environment).
	Version string
}

// BundleRunc returns the runc of the default node bundle that `go tool
// mage build` published into <repo>/_output/bundle/<name>/, after checking
// the bundle (signature, checksums, manifest) with
// <repo>/_output/nokmem-release.pub. Under NOKMEM_STRICT=1 a missing bundle
// fails the test; RuncEnv overrides the path for development.
func BundleRunc(t testing.TB, repo string) Runc {
	t.Helper()
	if p := os.Getenv(RuncEnv); p != "" {
		testenv.RequireFile(t, "runc from "+RuncEnv, p)
		return Runc{Path: p, Version: RuncEnv + " override"}
	}
	out := filepath.Join(repo, "_output", "bundle")
	dirs, _ := filepath.Glob(filepath.Join(out, bundle.NamePrefix+"*"))
	dirs = slices.DeleteFunc(dirs, func(d string) bool {
		fi, err := os.Stat(d)
		return err != nil || !fi.IsDir()
	})
	if len(dirs) == 0 {
		testenv.RequireFile(t, "the default node bundle of `go tool mage build`", filepath.Join(out, bundle.NamePrefix+"*"))
	}
	// The newest, when earlier builds left others.
	sort.Slice(dirs, func(i, j int) bool {
		fi, _ := os.Stat(dirs[i])
		fj, _ := os.Stat(dirs[j])
		return fi.ModTime().After(fj.ModTime())
	})
	m, err := bundle.Verify(dirs[0], filepath.Join(repo, "_output", "nokmem-release.pub"))
	if err != nil {
		t.Fatalf("default bundle: %v", err)
	}
	b := m.Binary("runc")
	if b == nil {
		t.Fatalf("default bundle %s: no runc in its manifest", dirs[0])
	}
	p, err := filepath.Abs(filepath.Join(dirs[0], b.Name))
	if err != nil {
		t.Fatal(err)
	}
	return Runc{Path: p, Version: b.Version}
}

// Cgroup is a scratch cgroup /sys/fs/cgroup/memory/nokmem-test-<random>.
// Engines create their containers' cgroups below Name (as cgroup parent) in
// every hierarchy; the cleanup removes them all, leaves first.
type Cgroup struct {
	// Name is "nokmem-test-<random>"; "/"+Name is the cgroup parent.
	Name string
}

// ScratchCgroup creates the scratch memory cgroup and registers its removal
// (in every cgroup v1 hierarchy where an engine created it). It needs root
// and cgroup v1 memory.
func ScratchCgroup(t testing.TB) *Cgroup {
	t.Helper()
	testenv.RequireCgroupV1Memory(t)
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	c := &Cgroup{Name: "nokmem-test-" + hex.EncodeToString(b)}
	if err := os.Mkdir(filepath.Join(testenv.MemoryRoot, c.Name), 0o755); err != nil {
		t.Fatalf("scratch cgroup: %v", err)
	}
	t.Cleanup(func() {
		if err := c.remove(); err != nil {
			t.Errorf("scratch cgroup %s: %v", c.Name, err)
		}
	})
	return c
}

// Parent is the cgroup parent to give an engine: "/nokmem-test-<random>".
func (c *Cgroup) Parent() string { return "/" + c.Name }

// Dir is the cgroup dir of rel (below the scratch cgroup) in the hierarchy
// of controller, e.g. Dir("memory", "ctr1").
func (c *Cgroup) Dir(controller, rel string) string {
	return filepath.Join("/sys/fs/cgroup", controller, c.Name, rel)
}

// remove removes the scratch cgroup in every hierarchy, leaves first. A
// cgroup that still holds a process is left and reported.
func (c *Cgroup) remove() error {
	hier, err := filepath.Glob("/sys/fs/cgroup/*")
	if err != nil {
		return err
	}
	var errs []error
	for _, h := range hier {
		top := filepath.Join(h, c.Name)
		if _, err := os.Stat(top); err != nil {
			continue
		}
		var dirs []string
		err := filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := os.Remove(dirs[i]); err != nil && !errors.Is(err, os.ErrNotExist) {
				procs, _ := os.ReadFile(filepath.Join(dirs[i], "cgroup.procs"))
				errs = append(errs, fmt.Errorf("remove %s (processes: %q): %w", dirs[i], strings.Fields(string(procs)), err))
			}
		}
	}
	return errors.Join(errs...)
}

// Run runs a command and returns its combined output, failing the test
// with the command line and output on error.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
