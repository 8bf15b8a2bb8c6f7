// Package gobuild builds a project's binaries from its assembled GOPATH tree
// with the pinned toolchain's own bin/go, and checks that the result was
// built by that toolchain.
//
// The toolchain runs in GOPATH mode (GO111MODULE=off, GOTOOLCHAIN=local, no
// GOROOT and an empty GOFLAGS from the caller's environment, so nothing on
// the host can switch the toolchain or change flags). Builds are
// reproducible: -trimpath, -buildvcs=false, an empty build id, and version
// variables stamped from the lock file (the upstream commit and its commit
// time, never the clock).
package gobuild

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"text/template"

	"github.com/nokmem/nokmem/internal/pins"
)

// StaticTags are added to a static cgo build: a statically linked glibc
// cannot load NSS modules, so name and user lookups use Go's own resolvers.
var StaticTags = []string{"netgo", "osusergo"}

// Env returns the environment for running the pinned toolchain in GOPATH
// mode on gopath: the process environment without the variables that could
// redirect or reconfigure the go command, plus GOPATH-mode settings. extra
// entries (e.g. GOCACHE=...) replace inherited ones with the same name.
func Env(gopath string, cgo bool, extra ...string) []string {
	drop := []string{"GOROOT", "GOPATH", "GOFLAGS", "GO111MODULE", "GOTOOLCHAIN", "CGO_ENABLED", "GOOS", "GOARCH", "GOENV", "GOWORK"}
	for _, kv := range extra {
		k, _, _ := strings.Cut(kv, "=")
		drop = append(drop, k)
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(drop, k) {
			env = append(env, kv)
		}
	}
	cgoVal := "0"
	if cgo {
		cgoVal = "1"
	}
	env = append(env, "GOPATH="+gopath, "GO111MODULE=off", "GOFLAGS=", "GOTOOLCHAIN=local", "GOENV=off", "CGO_ENABLED="+cgoVal)
	return append(env, extra...)
}

// Vars are the values the lock's -X templates may use.
type Vars struct {
	Version    string // upstream version, e.g. v1.12.4
	Commit     string // upstream commit
	CommitTime string // upstream commit time, RFC 3339 UTC
	Marker     string // patch-set marker, e.g. nokmem.ca19b4dd257e
}

// ExpandX expands the lock's -X templates (symbol={{.Version}}+{{.Marker}} ...).
func ExpandX(templates []string, v Vars) ([]string, error) {
	out := make([]string, 0, len(templates))
	for _, s := range templates {
		tmpl, err := template.New("ldflagsX").Option("missingkey=error").Parse(s)
		if err != nil {
			return nil, fmt.Errorf("ldflagsX %q: %w", s, err)
		}
		var b strings.Builder
		if err := tmpl.Execute(&b, v); err != nil {
			return nil, fmt.Errorf("ldflagsX %q: %w", s, err)
		}
		if !strings.Contains(b.String(), "=") {
			return nil, fmt.Errorf("ldflagsX %q: want symbol=value", s)
		}
		out = append(out, b.String())
	}
	return out, nil
}

// Spec is one build.
type Spec struct {
	// Go is the pinned toolchain's bin/go.
	Go string
	// GOPATH is the assembled tree's GOPATH; ImportPath the project's path in it.
	GOPATH     string
	ImportPath string
	// Packages are built, each to OutDir/<Output>.
	Packages []pins.BuildPackage
	OutDir   string
	CGO      bool
	// Static links statically (-extldflags -static) and adds StaticTags.
	Static bool
	Tags   []string
	// X are expanded -X symbol=value settings.
	X []string
	// Env is appended to the build environment (GOCACHE=..., CC=...).
	Env []string
	// Log receives the go command's output; os.Stderr when nil.
	Log io.Writer
	// Progress, when set, counts the packages of the running build (see
	// Progress); the go command then runs with -v, which only adds logging.
	Progress *Progress
}

// dir is the project's directory in the GOPATH tree, where the go command runs.
func (s Spec) dir() string {
	return filepath.Join(s.GOPATH, "src", filepath.FromSlash(s.ImportPath))
}

// Tags returns the build tags: Spec.Tags, plus StaticTags for a static build.
func (s Spec) tags() []string {
	t := slices.Clone(s.Tags)
	if s.Static {
		for _, st := range StaticTags {
			if !slices.Contains(t, st) {
				t = append(t, st)
			}
		}
	}
	return t
}

// LDFlags returns the -ldflags value.
func (s Spec) LDFlags() string {
	parts := []string{"-buildid="}
	if s.Static {
		parts = append(parts, "-extldflags", "-static")
	}
	for _, x := range s.X {
		parts = append(parts, "-X", x)
	}
	return strings.Join(parts, " ")
}

// Args returns the go command's arguments to build pkg into out.
func (s Spec) Args(pkg pins.BuildPackage) []string {
	args := []string{"build", "-trimpath", "-buildvcs=false"}
	if t := s.tags(); len(t) > 0 {
		args = append(args, "-tags", strings.Join(t, ","))
	}
	args = append(args, "-ldflags", s.LDFlags(), "-o", filepath.Join(s.OutDir, pkg.Output), s.ImportPath+"/"+pkg.Package)
	return args
}

// Build builds every package of s. The go command runs in the project's
// directory in the GOPATH tree.
func Build(ctx context.Context, s Spec) error {
	if err := os.MkdirAll(s.OutDir, 0o755); err != nil {
		return fmt.Errorf("build output folder: %w", err)
	}
	log := s.Log
	if log == nil {
		log = os.Stderr
	}
	for _, p := range s.Packages {
		args := s.Args(p)
		out := log
		var pw *ProgressWriter
		if s.Progress != nil {
			c, err := CountPackages(ctx, s, p)
			if err != nil {
				return fmt.Errorf("build %s/%s: count its packages: %w", s.ImportPath, p.Package, err)
			}
			s.Progress.Start(p.Package, c)
			args = append([]string{args[0], "-v"}, args[1:]...)
			pw = s.Progress.Writer(log)
			out = pw
		}
		cmd := exec.CommandContext(ctx, s.Go, args...)
		cmd.Dir = s.dir()
		cmd.Env = Env(s.GOPATH, s.CGO, s.Env...)
		cmd.Stdout, cmd.Stderr = out, out
		err := cmd.Run()
		if pw != nil {
			err = errors.Join(err, pw.Flush())
		}
		if err != nil {
			return fmt.Errorf("build %s/%s with %s: %w", s.ImportPath, p.Package, s.Go, err)
		}
	}
	return nil
}

// GoVersion returns the Go version a binary was built with, as
// `go version BINARY` prints it (e.g. "go1.26.11").
func GoVersion(ctx context.Context, goBin, binary string) (string, error) {
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, goBin, "version", binary)
	cmd.Env = Env(os.TempDir(), false)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go version %s: %w: %s", binary, err, strings.TrimSpace(errb.String()))
	}
	// "<binary>: go1.26.11"
	_, v, ok := strings.Cut(strings.TrimSpace(out.String()), ": ")
	if !ok || !strings.HasPrefix(v, "go") {
		return "", fmt.Errorf("go version %s: unexpected output %q", binary, out.String())
	}
	return v, nil
}

// CheckGoVersion fails unless binary was built by Go version want (e.g. "go1.26.11").
func CheckGoVersion(ctx context.Context, goBin, binary, want string) error {
	got, err := GoVersion(ctx, goBin, binary)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("%s was built with %s, want the pinned %s", binary, got, want)
	}
	return nil
}
