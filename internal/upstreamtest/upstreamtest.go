// Package upstreamtest runs a subset of an assembled tree's own unit tests
// with the pinned toolchain in GOPATH mode, so that a Go incompatibility in
// the vendored code (a panic at init, the reflect2 map-iteration crash on
// Go >= 1.18) shows up as a red test in CI rather than as a crash on a node.
//
// Tests build with the same -trimpath and tags as the release build, so they
// share its build cache. Vet is off: vet findings in 2018 upstream code say
// nothing about its behaviour under this toolchain.
package upstreamtest

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
	"github.com/nokmem/nokmem/internal/testrun"
)

// KubeletSubset is the kubelet v1.12.4 subset, relative to the tree root:
// the patched vendored runc cgroups/fs, apimachinery's JSON serializer, the
// codec factory tests that drive its YAML mode, the YAML serializer (no
// test files upstream: it is compiled, nothing more), all through the
// vendor/k8s.io links into staging/ as upstream's hack/ scripts test them,
// and pkg/kubelet/cm.
var KubeletSubset = []string{
	"./vendor/github.com/opencontainers/runc/libcontainer/cgroups/fs",
	"./vendor/k8s.io/apimachinery/pkg/runtime/serializer/json",
	"./vendor/k8s.io/apimachinery/pkg/runtime/serializer",
	"./vendor/k8s.io/apimachinery/pkg/runtime/serializer/yaml",
	"./pkg/kubelet/cm",
}

//go:embed testdata/nokmem_compat_test.go
var compatSource []byte

// KubeletProbes adds testdata/nokmem_compat_test.go to the JSON serializer
// package: upstream's tests there pass even with the crashing reflect2, the
// probe encodes maps through the YAML and pretty-JSON paths and loads the
// ugorji codec.
var KubeletProbes = []Probe{{
	Dir:    "vendor/k8s.io/apimachinery/pkg/runtime/serializer/json",
	Name:   "zz_nokmem_compat_test.go",
	Source: compatSource,
}}

// GoModSubset is KubeletSubset for a go.mod tree (kubelet 1.15+): the
// dependencies by import path (they are modules of the graph), the
// kubelet's own package relative to the tree root.
var GoModSubset = []string{
	"github.com/opencontainers/runc/libcontainer/cgroups/fs",
	"k8s.io/apimachinery/pkg/runtime/serializer/json",
	"k8s.io/apimachinery/pkg/runtime/serializer",
	"k8s.io/apimachinery/pkg/runtime/serializer/yaml",
	"./pkg/kubelet/cm",
}

// GoModSkip are upstream tests of GoModSubset that test the build
// machine, not the code: runc rc92's TestTryDefaultCgroupRoot expects the
// first entry of /sys/fs/cgroup to be a cgroup v1 mount, which a hybrid
// host with a cgroup2 "unified" mount (this Debian builder; never CentOS 7)
// does not have.
var GoModSkip = []string{"-skip", "^TestTryDefaultCgroupRoot$"}

// Probe is an extra test file placed into a package of the tree (through
// -overlay; the tree is not modified).
type Probe struct {
	Dir    string // package directory, relative to the tree root (or absolute)
	Name   string // file name
	Source []byte
}

// Spec says what to test where.
type Spec struct {
	// Go is the pinned toolchain's bin/go.
	Go string
	// GOPATH is the assembled tree's GOPATH; Root the project directory in it.
	GOPATH, Root string
	// Packages are the package patterns, relative to Root.
	Packages []string
	CGO      bool
	Tags     []string
	// Env is appended to the toolchain's environment (GOCACHE=...).
	Env []string
	// Probes are extra test files to place into the tree.
	Probes []Probe
	// Replace maps more tree files (absolute paths) to replacements ("" deletes),
	// e.g. to show that an old dependency turns the tests red.
	Replace map[string]string
	// Log receives the tests' plain output as it comes; nothing when nil.
	Log io.Writer
	// Args are further go test flags (a go.mod tree's -modfile).
	Args []string
}

// Package is one tested package's outcome.
type Package struct {
	ImportPath string
	// Action is "pass", "fail" or "skip" (no test files).
	Action string
	// Passed, Failed and Skipped count top-level tests.
	Passed, Skipped int
	Failed          []string
	// Output is the package's plain output.
	Output string
}

// ErrFailed is returned when a package's tests fail or do not build.
var ErrFailed = errors.New("upstream tests failed")

// Run tests every package and returns their outcomes, in import path order.
// The error wraps ErrFailed and names each failed package and test when any
// failed.
func Run(ctx context.Context, s Spec) ([]Package, error) {
	args := []string{"test", "-count=1", "-json", "-vet=off", "-trimpath"}
	if len(s.Tags) > 0 {
		args = append(args, "-tags", strings.Join(s.Tags, ","))
	}
	if len(s.Probes) > 0 || len(s.Replace) > 0 {
		work, err := os.MkdirTemp("", "nokmem-upstreamtest-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(work)
		overlay, err := writeOverlay(s, work)
		if err != nil {
			return nil, fmt.Errorf("test overlay for %s: %w", s.Root, err)
		}
		args = append(args, "-overlay", overlay)
	}
	args = append(append(args, s.Args...), s.Packages...)
	cmd := exec.CommandContext(ctx, s.Go, args...)
	cmd.Dir = s.Root
	cmd.Env = gobuild.Env(s.GOPATH, s.CGO, s.Env...)
	var raw bytes.Buffer
	cmd.Stdout, cmd.Stderr = &raw, &raw
	runErr := cmd.Run()
	pkgs, plain, err := parse(&raw, s.Log)
	if err != nil {
		return nil, fmt.Errorf("read %s test output: %w", s.Go, err)
	}
	var exitErr *exec.ExitError
	if runErr != nil && !errors.As(runErr, &exitErr) {
		return pkgs, fmt.Errorf("%s test in %s: %w", s.Go, s.Root, runErr)
	}
	var failed []string
	for _, p := range pkgs {
		if p.Action == "fail" {
			what := p.ImportPath
			if len(p.Failed) > 0 {
				what += " (" + strings.Join(p.Failed, ", ") + ")"
			}
			failed = append(failed, what)
		}
	}
	switch {
	case len(failed) > 0:
		return pkgs, fmt.Errorf("%w: %s", ErrFailed, strings.Join(failed, "; "))
	case runErr != nil:
		// Non-zero exit with no failed package: a build error outside any package's events.
		return pkgs, fmt.Errorf("%w: %s test: %v\n%s", ErrFailed, s.Go, runErr, plain)
	case len(pkgs) == 0:
		return nil, fmt.Errorf("%w: %s test ran no package\n%s", ErrFailed, s.Go, plain)
	}
	return pkgs, nil
}

// writeOverlay writes the probes and the -overlay file into work.
func writeOverlay(s Spec, work string) (string, error) {
	root, err := filepath.Abs(s.Root)
	if err != nil {
		return "", err
	}
	replace := map[string]string{}
	for k, v := range s.Replace {
		replace[k] = v
	}
	for i, p := range s.Probes {
		src := filepath.Join(work, fmt.Sprintf("%d-%s", i, p.Name))
		if err := os.WriteFile(src, p.Source, 0o644); err != nil {
			return "", err
		}
		dir := filepath.FromSlash(p.Dir)
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(root, dir)
		}
		replace[filepath.Join(dir, p.Name)] = src
	}
	data, err := json.Marshal(struct{ Replace map[string]string }{replace})
	if err != nil {
		return "", err
	}
	path := filepath.Join(work, "overlay.json")
	return path, os.WriteFile(path, data, 0o644)
}

// parse folds test2json events into per-package outcomes.
func parse(r io.Reader, log io.Writer) ([]Package, string, error) {
	byPkg := map[string]*Package{}
	get := func(path string) *Package {
		p, ok := byPkg[path]
		if !ok {
			p = &Package{ImportPath: path}
			byPkg[path] = p
		}
		return p
	}
	var plain strings.Builder
	out := func(p *Package, s string) {
		if p != nil {
			p.Output += s
		}
		plain.WriteString(s)
		if log != nil {
			io.WriteString(log, s)
		}
	}
	err := testrun.Scan(r, func(e testrun.Event) {
		pkg := e.Package
		if pkg == "" {
			// Build events name "path [path.test]".
			pkg, _, _ = strings.Cut(e.ImportPath, " ")
		}
		if pkg == "" {
			out(nil, e.Output)
			return
		}
		p := get(pkg)
		switch {
		case e.Action == "output" || e.Action == "build-output":
			out(p, e.Output)
		case e.Action == "build-fail":
			p.Action = "fail"
		case e.Test == "" && (e.Action == "pass" || e.Action == "fail" || e.Action == "skip"):
			if p.Action != "fail" {
				p.Action = e.Action
			}
		case e.Test != "" && !strings.Contains(e.Test, "/"):
			switch e.Action {
			case "pass":
				p.Passed++
			case "fail":
				p.Failed = append(p.Failed, e.Test)
			case "skip":
				p.Skipped++
			}
		}
	})
	pkgs := make([]Package, 0, len(byPkg))
	for _, p := range byPkg {
		if p.Action != "" { // build output of a dependency is in plain only
			pkgs = append(pkgs, *p)
		}
	}
	sort.Slice(pkgs, func(i, j int) bool { return pkgs[i].ImportPath < pkgs[j].ImportPath })
	return pkgs, plain.String(), err
}
