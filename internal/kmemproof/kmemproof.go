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
// file exists): the tests use verify/memcgsim mounted over FUSE, whose hook
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
	overlay, err := Overlay(s.Root, s.Patches, patched, work)
	if err != nil {
		return nil, fmt.Errorf("kmem proof in %s: %w", s.Root, err)
	}
	var out bytes.Buffer
	args := []string{"test", "-count=1", "-json", "-overlay", overlay}
	env := append(s.Env, "NOKMEM_PROOF_CGROUP_ROOT="+cgroupRoot)
	if s.FixTag != "" {
		if patched {
			args = append(args, "-tags", s.FixTag)
		}
		env = append(env, "NOKMEM_PROOF_EXPLICIT=skip")
	}
	cmd := exec.CommandContext(ctx, s.Go, append(args, "-run", "^"+TestName+"$", "./"+FSPackage)...)
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
		return nil, fmt.Errorf("kmem proof: %s test %s: %w\n%s", s.Go, FSPackage, runErr, res.Output)
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
	root, err := filepath.Abs(root)
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
	replace[filepath.Join(root, FSPackage, proofFile)] = proof
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
