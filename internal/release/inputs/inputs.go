// Package inputs describes everything that went into one built artifact
// set: the source module, every vendored module, the Go toolchain, the
// patches, the build flags and, for cgo builds, the Debian packages of the C
// toolchain and libraries. The SBOM and the provenance are written from it.
package inputs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/nokmem/nokmem/internal/gobuild"
	"github.com/nokmem/nokmem/internal/pins"
)

// Inputs is one artifact set's build inputs.
type Inputs struct {
	// Name is the artifact set's name, e.g. "runc".
	Name string
	// Version is the upstream version, e.g. "v1.0.0-rc5".
	Version string
	// Source is the module holding the project's own tree.
	Source Source
	// Vendor lists every module copied into the vendor tree, or, for a
	// go.mod build, every module of its build graph (Root "").
	Vendor []Vendored
	// Toolchain is the Go toolchain module that compiled the binaries.
	Toolchain pins.Module
	// Patches are applied to the source tree in this order.
	Patches []Patch
	// Build holds the compiler settings.
	Build Build
	// SystemPackages are the Debian packages (name and version) whose code or
	// tools reach the binary in a cgo build: gcc, binutils, libc6-dev, libseccomp-dev.
	SystemPackages []SystemPackage
}

// Source is the project's source module.
type Source struct {
	pins.Module
	// Commit is the upstream git commit.
	Commit string
	// CommitTime is the commit time (RFC 3339); it dates the SBOM so that
	// rewriting the release set is reproducible.
	CommitTime string
	// ImportPath is the tree's GOPATH import path.
	ImportPath string
}

// Vendored is one module copied to vendor/<Root>.
type Vendored struct {
	Root   string
	Module pins.Module
}

// Patch is one patch file with its content hash.
type Patch struct {
	// Name is the file name, e.g. "0001-kmem-only-when-limit-set.patch".
	Name string
	// SHA256 is the hex sha256 of the file.
	SHA256 string
}

// Build holds the build settings recorded in the provenance.
type Build struct {
	CGO    bool
	Static bool
	// Tags are the build tags passed to the go command.
	Tags []string
	// LDFlags are the -ldflags words, -X stamps included.
	LDFlags []string
	// Command is the go command line of one package's build, with the output
	// path relative to the artifact directory.
	Command []string
	// Env lists the environment settings that shape the build (GO111MODULE=off, ...).
	Env      []string
	Packages []string
}

// SystemPackage is a Debian package and its installed version.
type SystemPackage struct {
	Name    string
	Version string
}

// FromLock fills Inputs from a lock file and the patch files in patchDir
// (every *.patch, sorted; the folder may be missing when a build has no
// patches). The caller adds what the build derived from them: the final
// tags, linker flags, command and environment, and the system packages.
func FromLock(l *pins.Lock, patchDir string) (*Inputs, error) {
	in := &Inputs{
		Name:    l.Project,
		Version: l.Version,
		Source: Source{
			Module:     l.Source.Module,
			Commit:     l.Source.Commit,
			CommitTime: l.Source.CommitTime,
			ImportPath: l.Source.ImportPath,
		},
		Toolchain: l.Toolchain,
		Build: Build{
			CGO:    l.Build.CGO,
			Static: l.Build.Static,
			Tags:   append([]string(nil), l.Build.Tags...),
		},
	}
	for _, v := range l.Vendor {
		in.Vendor = append(in.Vendor, Vendored{Root: v.Root, Module: v.Module})
	}
	if l.GoMod != nil {
		// A go.mod build: the modules of its build graph (go.sum), so that
		// the SBOM and the vulnerability account list them.
		for _, m := range l.GoMod.Zips() {
			in.Vendor = append(in.Vendor, Vendored{Module: m})
		}
	}
	for _, p := range l.Build.Packages {
		in.Build.Packages = append(in.Build.Packages, p.Package)
	}
	patches, err := PatchFiles(patchDir)
	if err != nil {
		return nil, err
	}
	in.Patches = patches
	return in, nil
}

// PatchFiles hashes every *.patch file in dir, in name order. A missing
// dir means no patches.
func PatchFiles(dir string) ([]Patch, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.patch"))
	if err != nil {
		return nil, fmt.Errorf("list patches in %s: %w", dir, err)
	}
	sort.Strings(names)
	var ps []Patch
	for _, n := range names {
		data, err := os.ReadFile(n)
		if err != nil {
			return nil, fmt.Errorf("hash patch: %w", err)
		}
		sum := sha256.Sum256(data)
		ps = append(ps, Patch{Name: filepath.Base(n), SHA256: hex.EncodeToString(sum[:])})
	}
	return ps, nil
}

// CgoPackages are the Debian packages recorded for a cgo build: the C
// compiler (the gcc package, and the gcc-<major> package it depends on,
// see CgoToolchain), the linker, glibc's static libraries and headers.
var CgoPackages = []string{"gcc", "binutils", "libc6-dev"}

// CgoToolchain reads the versions of CgoPackages and extra packages (e.g.
// libseccomp-dev), and adds the versioned compiler package that Debian's
// gcc package points to (gcc 4:12.2.0-3 → gcc-12), whose exact version is
// the one the binary's .comment section records.
func CgoToolchain(ctx context.Context, extra ...string) ([]SystemPackage, error) {
	pkgs, err := DpkgVersions(ctx, append(slices.Clone(CgoPackages), extra...)...)
	if err != nil {
		return nil, err
	}
	major, err := gccMajor(pkgs[0].Version)
	if err != nil {
		return nil, err
	}
	versioned, err := DpkgVersions(ctx, "gcc-"+major)
	if err != nil {
		return nil, err
	}
	return append(pkgs, versioned...), nil
}

// gccMajor returns the compiler's major version from the gcc package's
// version ("4:12.2.0-3" → "12").
func gccMajor(v string) (string, error) {
	if _, after, ok := strings.Cut(v, ":"); ok {
		v = after
	}
	major, _, _ := strings.Cut(v, ".")
	if major == "" || strings.Trim(major, "0123456789") != "" {
		return "", fmt.Errorf("gcc package version %q names no major version", v)
	}
	return major, nil
}

// DpkgVersions reads the installed versions of the named Debian packages with
// `dpkg-query -W`. A package that is not installed is an error: the
// provenance must not silently omit an input.
func DpkgVersions(ctx context.Context, names ...string) ([]SystemPackage, error) {
	if len(names) == 0 {
		return nil, nil
	}
	args := append([]string{"-W", "-f", "${Package}\t${Version}\t${db:Status-Abbrev}\n"}, names...)
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "dpkg-query", args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("dpkg-query -W %s: %w: %s", strings.Join(names, " "), err, strings.TrimSpace(stderr.String()))
	}
	found := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 3 || !strings.HasPrefix(f[2], "ii") {
			continue
		}
		found[f[0]] = f[1]
	}
	var pkgs []SystemPackage
	var missing []string
	for _, n := range names {
		v, ok := found[n]
		if !ok {
			missing = append(missing, n)
			continue
		}
		pkgs = append(pkgs, SystemPackage{Name: n, Version: v})
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("dpkg-query: %w: %s", ErrPackageMissing, strings.Join(missing, ", "))
	}
	return pkgs, nil
}

// ErrPackageMissing is returned when a package needed for the record is not installed.
var ErrPackageMissing = errors.New("Debian package not installed")

// DirHash turns a go.sum hash ("h1:<base64>") into the lowercase hex form
// that in-toto's dirHash digest and SPDX's SHA256 checksum use.
func DirHash(h1 string) (string, error) {
	b64, ok := strings.CutPrefix(h1, "h1:")
	if !ok {
		return "", fmt.Errorf("%q is not an h1 hash", h1)
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(raw) != sha256.Size {
		return "", fmt.Errorf("%q is not an h1 hash (want base64 of 32 bytes)", h1)
	}
	return hex.EncodeToString(raw), nil
}

// PURL is the package URL of a Go module, e.g. pkg:golang/github.com/x/y@v1.2.3.
func PURL(m pins.Module) string {
	return "pkg:golang/" + m.Path + "@" + url.PathEscape(m.Version)
}

// DebPURL is the package URL of a Debian package on amd64.
func DebPURL(p SystemPackage) string {
	return "pkg:deb/debian/" + p.Name + "@" + url.PathEscape(p.Version) + "?arch=amd64"
}

// Artifact is one built file of the set, by name and hex sha256.
type Artifact struct {
	Name   string
	SHA256 string
}

// buildEnvKeys are the environment settings gobuild fixes for every build.
var buildEnvKeys = []string{"GO111MODULE", "GOFLAGS", "GOTOOLCHAIN", "GOENV", "CGO_ENABLED"}

// FromBuild fills Inputs from the lock, its patch folder and the gobuild
// spec that built the artifacts: the tags, linker flags, go command line
// and environment settings exactly as gobuild passes them.
func FromBuild(l *pins.Lock, patchDir string, s gobuild.Spec) (*Inputs, error) {
	in, err := FromLock(l, patchDir)
	if err != nil {
		return nil, err
	}
	if len(l.Build.Packages) == 0 {
		return nil, fmt.Errorf("%s %s: lock builds no package", l.Project, l.Version)
	}
	rel := s
	rel.OutDir = "." // the artifact's name, not the build machine's path
	args := rel.Args(l.Build.Packages[0])
	in.Build.Command = append([]string{"go"}, args...)
	in.Build.Tags = nil
	if i := slices.Index(args, "-tags"); i >= 0 && i+1 < len(args) {
		in.Build.Tags = strings.Split(args[i+1], ",")
	}
	in.Build.LDFlags = strings.Fields(s.LDFlags())
	for _, kv := range gobuild.Env("", s.CGO) {
		k, _, _ := strings.Cut(kv, "=")
		if slices.Contains(buildEnvKeys, k) {
			in.Build.Env = append(in.Build.Env, kv)
		}
	}
	return in, nil
}

// ParsePackages reads "name version" lines, as in the .BUILDENV file that
// records the Debian packages a committed checksum was built with.
func ParsePackages(data []byte) ([]SystemPackage, error) {
	var pkgs []SystemPackage
	for i, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
			continue
		case len(f) != 2:
			return nil, fmt.Errorf("line %d: want \"package version\", got %q", i+1, line)
		}
		pkgs = append(pkgs, SystemPackage{Name: f[0], Version: f[1]})
	}
	return pkgs, nil
}

// FormatPackages writes packages as "name version" lines (see ParsePackages).
func FormatPackages(pkgs []SystemPackage) string {
	var b strings.Builder
	for _, p := range pkgs {
		fmt.Fprintf(&b, "%s %s\n", p.Name, p.Version)
	}
	return b.String()
}

// PackageChanges lists how current differs from recorded, one line per
// package ("libc6-dev 2.36-9+deb12u14 -> 2.36-9+deb12u15", "+ name version",
// "- name version"), sorted by name; nil when they are the same.
func PackageChanges(recorded, current []SystemPackage) []string {
	was := map[string]string{}
	for _, p := range recorded {
		was[p.Name] = p.Version
	}
	now := map[string]string{}
	for _, p := range current {
		now[p.Name] = p.Version
	}
	var changes []string
	for n, v := range now {
		switch old, ok := was[n]; {
		case !ok:
			changes = append(changes, fmt.Sprintf("+ %s %s", n, v))
		case old != v:
			changes = append(changes, fmt.Sprintf("%s %s -> %s", n, old, v))
		}
	}
	for n, v := range was {
		if _, ok := now[n]; !ok {
			changes = append(changes, fmt.Sprintf("- %s %s", n, v))
		}
	}
	sort.Slice(changes, func(i, j int) bool { return strings.TrimLeft(changes[i], "+- ") < strings.TrimLeft(changes[j], "+- ") })
	return changes
}
