// Package verifybuild describes the build of the verify node program: the
// toolchain lock in vendor-pins/verify/lock.yaml, the source commit it is
// stamped with, the -X version stamps, the command line, and the build
// inputs (module graph from go list and go.sum) from which its SBOM and
// provenance are written.
//
// The stamped commit is the last commit that touched a file verify is built
// from (its packages, go.mod, go.sum), not HEAD: so committing the new
// expected checksum in vendor-pins/verify/ does not change the binary.
package verifybuild

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/dirhash"
	"sigs.k8s.io/yaml"

	"github.com/nokmem/nokmem/internal/pins"
	"github.com/nokmem/nokmem/internal/release/inputs"
)

// Package is the import path of the verify program, relative to the module.
const Package = "./verify"

// ModulePath is this repository's module.
const ModulePath = "github.com/nokmem/nokmem"

// LockFile and ChecksumsFile, relative to the repository root.
var (
	LockFile      = filepath.Join("vendor-pins", "verify", "lock.yaml")
	ChecksumsFile = filepath.Join("vendor-pins", "verify", "verify.CHECKSUMS")
)

// Lock pins the toolchain of the verify build.
type Lock struct {
	Toolchain pins.Module `json:"toolchain"`
}

// LoadLock reads and checks the lock file.
func LoadLock(path string) (*Lock, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("verify lock: %w", err)
	}
	var l Lock
	if err := yaml.UnmarshalStrict(data, &l); err != nil {
		return nil, fmt.Errorf("verify lock %s: %w", path, err)
	}
	if l.Toolchain.Path != "golang.org/toolchain" || l.Toolchain.Version == "" || !strings.HasPrefix(l.Toolchain.H1, "h1:") {
		return nil, fmt.Errorf("verify lock %s: toolchain %+v: want golang.org/toolchain with a version and an h1", path, l.Toolchain)
	}
	return &l, nil
}

// Stamp is what the binary says about itself (`verify version`).
type Stamp struct {
	// Version is v0.0.0-<commit time>-<commit12>, with "-dirty" when the
	// source files differ from that commit.
	Version    string
	Commit     string
	CommitTime time.Time
	// Bundle is the name of the node bundle the binary is built for.
	Bundle string
}

// X returns the -X linker flags that stamp main.version, main.commit and main.fromBundle.
func (s Stamp) X() []string {
	return []string{"main.version=" + s.Version, "main.commit=" + s.Commit, "main.fromBundle=" + s.Bundle}
}

// Spec is one verify build.
type Spec struct {
	Go     string // the pinned go command
	Root   string // repository root
	Out    string // output binary
	Stamp  Stamp
	GoVers string // e.g. go1.26.11
}

// LDFlags is the -ldflags value: empty build id and the stamps.
func (s Spec) LDFlags() string {
	f := []string{"-buildid="}
	for _, x := range s.Stamp.X() {
		f = append(f, "-X", x)
	}
	return strings.Join(f, " ")
}

// Args are the go command's arguments.
func (s Spec) Args() []string {
	return []string{"build", "-trimpath", "-buildvcs=false", "-mod=readonly", "-ldflags=" + s.LDFlags(), "-o", s.Out, Package}
}

// Env is the environment of the build: the caller's, without GOROOT (the
// pinned toolchain finds its own), with cgo off and no toolchain switching.
func Env() []string {
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "GOROOT=") && !strings.HasPrefix(e, "CGO_ENABLED=") && !strings.HasPrefix(e, "GOTOOLCHAIN=") && !strings.HasPrefix(e, "GOFLAGS=") {
			env = append(env, e)
		}
	}
	return append(env, "CGO_ENABLED=0", "GOTOOLCHAIN=local", "GOFLAGS=")
}

// EnvSettings are the settings of Env recorded in the provenance.
var EnvSettings = []string{"CGO_ENABLED=0", "GOTOOLCHAIN=local", "GOFLAGS="}

// Build runs the build.
func Build(ctx context.Context, s Spec) error {
	cmd := exec.CommandContext(ctx, s.Go, s.Args()...)
	cmd.Dir, cmd.Env = s.Root, Env()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build verify with %s: %w\n%s", s.Go, err, out.String())
	}
	return nil
}

// SourceFiles are the repository files verify is built from, relative to
// root: go.mod, go.sum and every file of the module's packages that verify
// imports (its own included), test files left out.
func SourceFiles(ctx context.Context, goBin, root string) ([]string, error) {
	out, err := goList(ctx, goBin, root, "-deps", "-f", `{{if .Module}}{{if .Module.Main}}{{.Dir}}{{range .GoFiles}} {{.}}{{end}}{{range .EmbedFiles}} {{.}}{{end}}{{end}}{{end}}`, Package)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	files := []string{"go.mod", "go.sum"}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		rel, err := filepath.Rel(abs, f[0])
		if err != nil {
			return nil, err
		}
		for _, n := range f[1:] {
			files = append(files, filepath.ToSlash(filepath.Join(rel, n)))
		}
	}
	slices.Sort(files)
	return files, nil
}

// SourceStamp finds the last commit that touched files and whether the
// work tree differs from it there.
func SourceStamp(ctx context.Context, root string, files []string, bundleName string) (Stamp, error) {
	args := append([]string{"log", "-1", "--format=%H %ct", "--"}, files...)
	out, err := git(ctx, root, args...)
	if err != nil {
		return Stamp{}, err
	}
	var commit string
	var sec int64
	if _, err := fmt.Sscanf(out, "%s %d", &commit, &sec); err != nil {
		return Stamp{}, fmt.Errorf("git log of verify's sources: %q: %w", out, err)
	}
	t := time.Unix(sec, 0).UTC()
	st := Stamp{Commit: commit, CommitTime: t, Bundle: bundleName,
		Version: fmt.Sprintf("v0.0.0-%s-%s", t.Format("20060102150405"), commit[:12])}
	status, err := git(ctx, root, append([]string{"status", "--porcelain", "--untracked-files=all", "--"}, files...)...)
	if err != nil {
		return Stamp{}, err
	}
	if strings.TrimSpace(status) != "" {
		st.Version += "-dirty"
		st.Commit += "-dirty"
	}
	return st, nil
}

// Inputs describes the verify build for its SBOM and provenance: the source
// (this module at the stamped pseudo-version, hashed over files like a
// module zip), the toolchain, every module in verify's build graph with its
// go.sum h1, and the build settings.
func Inputs(ctx context.Context, s Spec, l *Lock, files []string) (*inputs.Inputs, error) {
	h1, err := dirhash.Hash1(files, func(name string) (io.ReadCloser, error) { return os.Open(filepath.Join(s.Root, name)) })
	if err != nil {
		return nil, fmt.Errorf("hash verify's sources: %w", err)
	}
	mods, err := Modules(ctx, s.Go, s.Root)
	if err != nil {
		return nil, err
	}
	in := &inputs.Inputs{
		Name:    "verify",
		Version: s.Stamp.Version,
		Source: inputs.Source{
			Module:     pins.Module{Path: ModulePath, Version: s.Stamp.Version, H1: h1},
			Commit:     s.Stamp.Commit,
			CommitTime: s.Stamp.CommitTime.Format(time.RFC3339),
			ImportPath: ModulePath + "/verify",
		},
		Toolchain: l.Toolchain,
		Build: inputs.Build{
			Static:   true,
			LDFlags:  strings.Fields(s.LDFlags()),
			Command:  append([]string{"go"}, Spec{Out: "verify", Stamp: s.Stamp}.Args()...),
			Env:      EnvSettings,
			Packages: []string{Package},
		},
	}
	for _, m := range mods {
		in.Vendor = append(in.Vendor, inputs.Vendored{Module: m})
	}
	return in, nil
}

// Modules lists the modules whose packages are linked into verify, with
// their h1 from go.sum.
func Modules(ctx context.Context, goBin, root string) ([]pins.Module, error) {
	out, err := goList(ctx, goBin, root, "-deps", "-f", `{{with .Module}}{{if not .Main}}{{.Path}} {{.Version}}{{end}}{{end}}`, Package)
	if err != nil {
		return nil, err
	}
	sum, err := readGoSum(filepath.Join(root, "go.sum"))
	if err != nil {
		return nil, err
	}
	var mods []pins.Module
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" || seen[line] {
			continue
		}
		seen[line] = true
		f := strings.Fields(line)
		h1 := sum[f[0]+" "+f[1]]
		if h1 == "" {
			return nil, fmt.Errorf("go.sum has no h1 for %s %s", f[0], f[1])
		}
		mods = append(mods, pins.Module{Path: f[0], Version: f[1], H1: h1})
	}
	slices.SortFunc(mods, func(a, b pins.Module) int { return strings.Compare(a.String(), b.String()) })
	return mods, nil
}

func readGoSum(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && !strings.HasSuffix(f[1], "/go.mod") {
			out[f[0]+" "+f[1]] = f[2]
		}
	}
	return out, sc.Err()
}

func goList(ctx context.Context, goBin, root string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, goBin, append([]string{"list", "-mod=readonly"}, args...)...)
	cmd.Dir, cmd.Env = root, Env()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go list %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}

func git(ctx context.Context, root string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}
