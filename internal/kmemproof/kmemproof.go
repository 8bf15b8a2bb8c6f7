// Package kmemproof is the behavioural proof of the kmem patch: it runs
// libcontainer's own MemoryGroup.Apply and Set, from the assembled kubelet
// tree, against a fake cgroup root and reports what happened.
//
// The proof is a Go test file kept in testdata/ (nokmem_proof_test.go). Run
// places it into the tree's vendored
// vendor/github.com/opencontainers/runc/libcontainer/cgroups/fs package with
// go build's -overlay (the tree itself is not modified, so concurrent builds
// and test runs of the same tree are unaffected) and runs it with the pinned
// toolchain in GOPATH mode. The same overlay can present the tree unpatched
// or patched, computed from the patch series, whatever state the tree is in,
// so one assembled tree shows both: the proof fails unpatched and passes
// patched.
//
// The fake cgroup root must create a new cgroup's control files on mkdir,
// like cgroupfs (libcontainer only writes memory.kmem.limit_in_bytes when the
// file exists): the tests use internal/memcgsim mounted over FUSE, whose hook
// sees every write.
package kmemproof

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/nokmem/nokmem/internal/gobuild"
	"github.com/nokmem/nokmem/internal/patchset"
	"github.com/nokmem/nokmem/internal/testrun"
)

// FSPackage is the vendored runc package the proof runs in, relative to the project root.
const FSPackage = "vendor/github.com/opencontainers/runc/libcontainer/cgroups/fs"

// TestName is the proof's top-level test function.
const TestName = "TestNokmemProof"

// proofFile is the file name the proof gets in FSPackage.
const proofFile = "zz_nokmem_proof_test.go"

//go:embed testdata/nokmem_proof_test.go
var proofSource []byte

// Spec says where and how to run the proof.
type Spec struct {
	// Go is the pinned toolchain's bin/go.
	Go string
	// GOPATH is the assembled tree's GOPATH; Root the project directory in it.
	GOPATH, Root string
	// Patches is the project's patch series.
	Patches *patchset.Set
	// Env is appended to the toolchain's environment (GOCACHE=...).
	Env []string
	// FixTag, for a lock with fix: buildtag, is the build tag (nokmem) that
	// selects libcontainer's kmem_disabled.go: the fixed run uses it, the
	// unfixed run does not, and the explicit kernel memory limit case is
	// left out (the tag ignores or refuses such a limit, by version).
	FixTag string
	// PkgDir is the directory of the libcontainer fs package; Root/FSPackage
	// when empty. A go.mod tree's dependency lives in the read-only module
	// cache, where go refuses overlays: the caller passes a writable copy
	// (srctree.WritableModule) and its go.mod in Args (-modfile).
	PkgDir string
	// Package is the go test package argument; ./FSPackage when empty.
	Package string
	// Args are further go test flags, e.g. -modfile=<copy's go.mod>.
	Args []string
}

func (s Spec) pkgDir() string {
	if s.PkgDir != "" {
		return s.PkgDir
	}
	return filepath.Join(s.Root, FSPackage)
}

func (s Spec) pkg() string {
	if s.Package != "" {
		return s.Package
	}
	return "./" + FSPackage
}

// Result is the outcome of one proof run.
type Result struct {
	// Patched says which state of the tree was tested.
	Patched bool
	// Passed is true when the proof test passed.
	Passed bool
	// Subtests maps each subtest name (e.g. "memory_limit_only") to its
	// final action: "pass", "fail" or "skip".
	Subtests map[string]string
	// Output is the test's plain output, for the report.
	Output string
}

// Failed lists the subtests that failed, sorted.
func (r *Result) Failed() []string {
	var f []string
	for n, a := range r.Subtests {
		if a == "fail" {
			f = append(f, n)
		}
	}
	sort.Strings(f)
	return f
}

// Run runs the proof on the tree presented patched (true) or unpatched
// (false) (for a buildtag fix: built with or without Spec.FixTag), with cgroupRoot as the fake cgroup root (a directory holding the
// "memory" hierarchy). A failing proof is a Result with Passed false; an
// error means the proof could not run (tree state, toolchain, overlay).
func Run(ctx context.Context, s Spec, patched bool, cgroupRoot string) (*Result, error) {
	work, err := os.MkdirTemp("", "nokmem-kmemproof-")
	if err != nil {
		return nil, fmt.Errorf("kmem proof: %w", err)
	}
	defer os.RemoveAll(work)
	overlay, err := overlayIn(s.Root, s.pkgDir(), s.Patches, patched, work)
	if err != nil {
		return nil, fmt.Errorf("kmem proof in %s: %w", s.Root, err)
	}
	api, err := readAPI(s.pkgDir())
	if err != nil {
		return nil, fmt.Errorf("kmem proof: %w", err)
	}
	var out bytes.Buffer
	args := append([]string{"test", "-count=1", "-json", "-overlay", overlay}, s.Args...)
	name, prefix := s.Go, []string(nil)
	if api.findUnder {
		// This libcontainer finds the memory hierarchy only among cgroup
		// mounts under the cgroup root it is given (mountinfo lines whose
		// super options name memory), which a FUSE mount never is. The
		// proof then runs in a private mount namespace (no propagation to
		// the host) where the simulator is bind-mounted over the host's
		// memory hierarchy: libcontainer finds the host's mountinfo line
		// for /sys/fs/cgroup/memory and, through it, reaches the simulator.
		name, prefix = "unshare", []string{"--mount", "--propagation", "private", "--", "sh", "-ec",
			`mount --bind "$1" ` + hostMemory + `; shift; exec "$@"`, "sh", filepath.Join(cgroupRoot, "memory"), s.Go}
		cgroupRoot = filepath.Dir(hostMemory)
	}
	env := append(s.Env, "NOKMEM_PROOF_CGROUP_ROOT="+cgroupRoot)
	if s.FixTag != "" {
		if patched {
			args = append(args, "-tags", s.FixTag)
		}
		env = append(env, "NOKMEM_PROOF_EXPLICIT=skip")
	}
	cmd := exec.CommandContext(ctx, name, append(prefix, append(args, "-run", "^"+TestName+"$", s.pkg())...)...)
	cmd.Dir = s.Root
	cmd.Env = gobuild.Env(s.GOPATH, true, env...)
	cmd.Stdout, cmd.Stderr = &out, &out
	runErr := cmd.Run()
	res, perr := parse(&out)
	if perr != nil {
		return nil, fmt.Errorf("kmem proof: read go test output: %w", perr)
	}
	res.Patched = patched
	var exitErr *exec.ExitError
	switch {
	case runErr == nil:
		res.Passed = true
	case errors.As(runErr, &exitErr) && len(res.Subtests) > 0:
		// The test ran and failed.
	default:
		return nil, fmt.Errorf("kmem proof: %s test %s: %w\n%s", s.Go, s.pkg(), runErr, res.Output)
	}
	if res.Passed && len(res.Subtests) == 0 {
		return nil, fmt.Errorf("kmem proof: %s ran no subtest (skipped?)\n%s", TestName, res.Output)
	}
	for n, a := range res.Subtests {
		if a == "skip" {
			return nil, fmt.Errorf("kmem proof: subtest %s skipped\n%s", n, res.Output)
		}
	}
	return res, nil
}

// Overlay writes, in work, a go build -overlay file that adds the proof test
// to FSPackage and presents every file the patch series touches in the
// wanted state, and returns its path.
func Overlay(root string, set *patchset.Set, patched bool, work string) (string, error) {
	return overlayIn(root, filepath.Join(root, FSPackage), set, patched, work)
}

// overlayIn is Overlay with the fs package in pkgDir.
func overlayIn(root, pkgDir string, set *patchset.Set, patched bool, work string) (string, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return "", err
	}
	if pkgDir, err = filepath.Abs(pkgDir); err != nil {
		return "", err
	}
	adapter, err := Adapter(pkgDir)
	if err != nil {
		return "", err
	}
	state, err := set.Status(root)
	if err != nil {
		return "", fmt.Errorf("tree is neither patched nor unpatched: %w", err)
	}
	replace := map[string]string{}
	proof := filepath.Join(work, proofFile)
	if err := os.WriteFile(proof, proofSource, 0o644); err != nil {
		return "", err
	}
	replace[filepath.Join(pkgDir, proofFile)] = proof
	adapterPath := filepath.Join(work, adapterFile)
	if err := os.WriteFile(adapterPath, adapter, 0o644); err != nil {
		return "", err
	}
	replace[filepath.Join(pkgDir, adapterFile)] = adapterPath
	if (state == patchset.Patched) != patched {
		// The tree is in the other state: present the series applied or removed.
		content, err := set.Result(root, state == patchset.Patched)
		if err != nil {
			return "", err
		}
		for i, name := range sortedKeys(content) {
			target := filepath.Join(root, filepath.FromSlash(name))
			if content[name] == nil {
				replace[target] = "" // deleted
				continue
			}
			p := filepath.Join(work, fmt.Sprintf("%03d-%s", i, filepath.Base(name)))
			if err := os.WriteFile(p, content[name], 0o644); err != nil {
				return "", err
			}
			replace[target] = p
		}
	}
	data, err := json.Marshal(struct{ Replace map[string]string }{replace})
	if err != nil {
		return "", err
	}
	p := filepath.Join(work, "overlay.json")
	return p, os.WriteFile(p, data, 0o644)
}

// hostMemory is the host's cgroup v1 memory hierarchy.
const hostMemory = "/sys/fs/cgroup/memory"

// api is what the proof needs to know of a libcontainer version.
type api struct {
	// applyPath: MemoryGroup.Apply(path, d) (rc91 on) instead of Apply(d).
	applyPath bool
	// findUnder: cgroups.FindCgroupMountpoint(cgroupPath, subsystem) only
	// finds cgroup mounts under cgroupPath (rc6-era on).
	findUnder bool
}

// readAPI reads the libcontainer API of the fs package in pkgDir (and of
// the cgroups package above it).
func readAPI(pkgDir string) (api, error) {
	var a api
	mem, err := os.ReadFile(filepath.Join(pkgDir, "memory.go"))
	if err != nil {
		return a, fmt.Errorf("libcontainer API: %w", err)
	}
	a.applyPath = bytes.Contains(mem, []byte("Apply(path string, d *cgroupData)"))
	files, err := filepath.Glob(filepath.Join(filepath.Dir(pkgDir), "*.go"))
	if err != nil {
		return a, err
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return a, err
		}
		if bytes.Contains(data, []byte("func FindCgroupMountpoint(cgroupPath, subsystem string)")) {
			a.findUnder = true
		}
	}
	return a, nil
}

// adapterFile is the file name of the API adapter in FSPackage.
const adapterFile = "zz_nokmem_adapter_test.go"

// Adapter returns the proof's adapter to the libcontainer API of the fs
// package in pkgDir: MemoryGroup.Apply(d) up to rc10, Apply(path, d) from
// rc91; cgroups.FindCgroupMountpoint(subsystem) before rc6-era runc,
// (cgroupPath, subsystem) after.
func Adapter(pkgDir string) ([]byte, error) {
	api, err := readAPI(pkgDir)
	if err != nil {
		return nil, err
	}
	apply, find := "m.Apply(d)", `cgroups.FindCgroupMountpoint("memory")`
	if api.applyPath {
		apply = "m.Apply(path, d)"
	}
	if api.findUnder {
		find = `cgroups.FindCgroupMountpoint("", "memory")`
	}
	return []byte(`//go:build linux
// +build linux

// Written by internal/kmemproof for this tree's libcontainer API.

package fs

import "github.com/opencontainers/runc/libcontainer/cgroups"

func nokmemApply(m *MemoryGroup, path string, d *cgroupData) error { _ = path; return ` + apply + ` }

func nokmemFindMemoryMount() (string, error) { return ` + find + ` }
`), nil
}

func sortedKeys(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// parse reads test2json events: subtest results and the plain output.
func parse(r io.Reader) (*Result, error) {
	res := &Result{Subtests: map[string]string{}}
	var plain strings.Builder
	err := testrun.Scan(r, func(e testrun.Event) {
		plain.WriteString(e.Output)
		sub, ok := strings.CutPrefix(e.Test, TestName+"/")
		if ok && (e.Action == "pass" || e.Action == "fail" || e.Action == "skip") {
			res.Subtests[sub] = e.Action
		}
	})
	res.Output = plain.String()
	return res, err
}
