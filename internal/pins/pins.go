// Package pins reads the lock files under vendor-pins/: one per project and
// version (vendor-pins/<project>/<version>.yaml), naming every input of a
// build with its h1 hash: the source module, the Go toolchain, every vendored
// repository root, the roots deliberately left out, and overrides.
package pins

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"golang.org/x/mod/module"
	"sigs.k8s.io/yaml"
)

// Lock is one project version's lock file.
type Lock struct {
	// Project is the folder name under vendor-pins/ and patches/, e.g. "kubernetes".
	Project string `json:"project"`
	// Version is the upstream version, e.g. "v1.12.4".
	Version string `json:"version"`
	// Source is the module that holds the project's own tree.
	Source Source `json:"source"`
	// Toolchain is the Go toolchain module that builds it.
	Toolchain Module `json:"toolchain"`
	// Fix says how the build keeps kmem accounting off.
	Fix Fix `json:"fix"`
	// Build holds the settings passed to the toolchain.
	Build Build `json:"build"`
	// Staging, when set, links the source tree's own staging repositories
	// into vendor/ (kubernetes); projects without staging repos (runc) leave it out.
	Staging *Staging `json:"staging,omitempty"`
	// Vendor maps every vendored repository root to the module that provides
	// it (GOPATH trees; a go.mod tree has GoMod instead).
	Vendor []VendorEntry `json:"vendor,omitempty"`
	// Excluded lists upstream vendor roots deliberately left out, with the reason.
	Excluded []Excluded `json:"excluded,omitempty"`
	// GoMod, for source.kind gomod, pins the module graph of upstream's
	// go.mod and the lock's changes to it (see GoMod).
	GoMod *GoMod `json:"gomod,omitempty"`
}

// Fix kinds.
const (
	// FixPatch: the patch series in patches/<project>/<version> changes the
	// vendored libcontainer so that Apply no longer activates kmem.
	FixPatch = "patch"
	// FixBuildTag: the tree already has libcontainer's kmem_disabled.go
	// (runc 6a2c1559, "libcontainer: ability to compile without kmem");
	// building with the tag selects it, no source change.
	FixBuildTag = "buildtag"
	// FixNone: the tree's cgroupfs driver never activates kmem (runc rc94
	// and later, #2840: MemoryGroup.Apply only joins the cgroup); nothing
	// to change. The pipeline reads the driver named by Requires and
	// refuses the tree if it can activate kmem after all.
	FixNone = "none"
)

// FixKinds are the fix kinds, for messages.
var FixKinds = []string{FixPatch, FixBuildTag, FixNone}

// NokmemTag is the build tag that selects libcontainer's kmem_disabled.go.
const NokmemTag = "nokmem"

// KmemDisabledFile is the file a buildtag fix needs in the tree.
const KmemDisabledFile = "kmem_disabled.go"

// MemoryFile is the cgroupfs driver file a none fix names: the one that
// holds MemoryGroup.Apply.
const MemoryFile = "memory.go"

// Fix is how a build keeps kmem accounting off.
type Fix struct {
	// Kind is FixPatch, FixBuildTag or FixNone.
	Kind string `json:"kind"`
	// Tag (buildtag only) is the build tag, NokmemTag; it must be in build.tags.
	Tag string `json:"tag,omitempty"`
	// Requires (buildtag only) is the slash path, relative to the source
	// root, of the kmem_disabled.go the tag selects, e.g.
	// vendor/github.com/opencontainers/runc/libcontainer/cgroups/fs/kmem_disabled.go.
	// A tree without it would build with kmem on, so the pipeline refuses it.
	// For FixNone it is the cgroupfs driver's memory.go, e.g.
	// vendor/github.com/opencontainers/cgroups/fs/memory.go (runc 1.3+),
	// whose package the pipeline reads for any kmem activation.
	Requires string `json:"requires,omitempty"`
}

// validate checks the fix against the build settings.
func (f Fix) validate(b Build) error {
	switch f.Kind {
	case FixPatch:
		if f.Tag != "" || f.Requires != "" {
			return fmt.Errorf("fix: kind %s takes no tag or requires (those are for %s and %s)", FixPatch, FixBuildTag, FixNone)
		}
	case FixBuildTag:
		var errs []error
		if f.Tag != NokmemTag {
			errs = append(errs, fmt.Errorf("fix: kind %s needs tag: %s, got %q", FixBuildTag, NokmemTag, f.Tag))
		} else if !slices.Contains(b.Tags, f.Tag) {
			errs = append(errs, fmt.Errorf("fix: tag %s is not in build.tags %v", f.Tag, b.Tags))
		}
		if !relPathTo(f.Requires, KmemDisabledFile) {
			errs = append(errs, fmt.Errorf("fix: kind %s needs requires: the relative path of libcontainer/cgroups/fs/%s in the tree, got %q", FixBuildTag, KmemDisabledFile, f.Requires))
		}
		return errors.Join(errs...)
	case FixNone:
		var errs []error
		if f.Tag != "" || slices.Contains(b.Tags, NokmemTag) {
			errs = append(errs, fmt.Errorf("fix: kind %s takes no tag, and build.tags %v must not have %s (it would select nothing)", FixNone, b.Tags, NokmemTag))
		}
		if !relPathTo(f.Requires, MemoryFile) {
			errs = append(errs, fmt.Errorf("fix: kind %s needs requires: the relative path of the cgroupfs driver's %s in the tree, got %q", FixNone, MemoryFile, f.Requires))
		}
		return errors.Join(errs...)
	case "":
		return fmt.Errorf("fix: kind is required (one of %s)", strings.Join(FixKinds, ", "))
	default:
		return fmt.Errorf("fix: unknown kind %q (want one of %s)", f.Kind, strings.Join(FixKinds, ", "))
	}
	return nil
}

// relPathTo reports whether p is a clean relative slash path inside the
// tree whose last element is base.
func relPathTo(p, base string) bool {
	clean := path.Clean(p)
	return p != "" && clean == p && !path.IsAbs(clean) && !strings.HasPrefix(clean, "../") && path.Base(clean) == base
}

// Staging names a directory of the source tree laid out like GOPATH/src
// (kubernetes: Dir "staging/src", Prefix "k8s.io"). Every directory
// <Dir>/<Prefix>/<repo> gets a relative symlink vendor/<Prefix>/<repo>
// pointing at it, as upstream's hack/ scripts set up.
type Staging struct {
	Dir    string `json:"dir"`
	Prefix string `json:"prefix"`
}

// Module is a module@version with its go.sum h1 hash of the zip.
type Module struct {
	Path    string `json:"path"`
	Version string `json:"version"`
	H1      string `json:"h1"`
}

// String returns path@version.
func (m Module) String() string { return m.Path + "@" + m.Version }

// Source is the project's source module and the upstream commit it was cut from.
type Source struct {
	Module `json:",inline"`
	// Commit is the upstream git commit of Version; empty only when
	// CommitUnknown says why it could not be determined.
	Commit string `json:"commit"`
	// CommitUnknown, set exactly when Commit is empty, says why the
	// upstream commit of Version is not known (the module proxy does not
	// record a tag's commit). The build then stamps an empty git commit, as
	// upstream's hack/lib/version.sh does for a build outside git.
	CommitUnknown string `json:"commitUnknown,omitempty"`
	// CommitTime is the commit time (RFC 3339, UTC); builds stamp it instead of the clock.
	CommitTime string `json:"commitTime"`
	// ImportPath is where the tree sits in GOPATH/src, e.g. "k8s.io/kubernetes".
	ImportPath string `json:"importPath"`
	// Kind is how the tree gets its dependencies: "" for a GOPATH tree
	// filled from Lock.Vendor, SourceGoMod for a module-mode tree built
	// from upstream's go.mod with Lock.GoMod's module graph.
	Kind string `json:"kind,omitempty"`
}

// Build holds the build settings.
type Build struct {
	// Packages are the import paths (relative to Source.ImportPath) to build, with the output name.
	Packages []BuildPackage `json:"packages"`
	CGO      bool           `json:"cgo"`
	Static   bool           `json:"static"`
	Tags     []string       `json:"tags,omitempty"`
	// LDFlagsX are -X settings (symbol=value); values may use {{.Version}}, {{.Commit}},
	// {{.CommitTime}} and {{.Marker}}: the patch-set marker, a semver build-metadata
	// string without the "+" (e.g. "nokmem.1"), defined by the build step.
	LDFlagsX []string `json:"ldflagsX,omitempty"`
}

// BuildPackage is one binary to build.
type BuildPackage struct {
	Package string `json:"package"`
	Output  string `json:"output"`
}

// VendorEntry maps a vendored repository root (the directory under vendor/)
// to the module whose zip fills it.
type VendorEntry struct {
	Root   string `json:"root"`
	Module Module `json:"module"`
	// UpstreamRev is the revision upstream's Godeps.json / vendor.conf names.
	UpstreamRev string `json:"upstreamRev,omitempty"`
	// Found says how the module version was established.
	Found string `json:"found,omitempty"`
	// Override, when set, says why the module differs from upstream's pin.
	Override *Override `json:"override,omitempty"`
}

// Override documents a deliberate deviation from upstream's pinned revision.
type Override struct {
	// Fixes is the problem the override solves.
	Fixes string `json:"fixes"`
	// DropWhen says when the override can go.
	DropWhen string `json:"dropWhen"`
}

// Excluded is an upstream vendor root that is not part of the build.
type Excluded struct {
	Root        string `json:"root"`
	UpstreamRev string `json:"upstreamRev,omitempty"`
	Reason      string `json:"reason"`
}

// ErrUnknownVersion is returned when no lock file exists for a project version.
var ErrUnknownVersion = errors.New("unknown version")

// Path returns the lock file path for project@version under dir (the vendor-pins folder).
func Path(dir, project, version string) string {
	return filepath.Join(dir, project, version+".yaml")
}

// Load reads and validates the lock file for project@version under dir.
// When dir has a matrix.yaml that marks the version unbuildable, unaffected
// or planned, Load refuses it with the matrix's reason (ErrUnbuildable) and,
// for an unbuildable one, the nearest buildable version.
func Load(dir, project, version string) (*Lock, error) {
	m, err := readMatrix(filepath.Join(dir, MatrixFile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if m != nil {
		if e := m.Entry(project, version); e != nil {
			if err := e.Refuse(); err != nil {
				return nil, err
			}
		}
	}
	return loadLock(dir, project, version)
}

// loadLock reads and validates one lock file.
func loadLock(dir, project, version string) (*Lock, error) {
	p := Path(dir, project, version)
	data, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		known := strings.Join(Known(dir, project), ", ")
		if known == "" {
			known = "none"
		}
		return nil, fmt.Errorf("%s %s: %w (no lock file %s; known: %s)", project, version, ErrUnknownVersion, p, known)
	}
	if err != nil {
		return nil, err
	}
	var l Lock
	if err := yaml.UnmarshalStrict(data, &l); err != nil {
		return nil, fmt.Errorf("parse %s: %w", p, err)
	}
	if err := l.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return &l, nil
}

// Known lists the versions that have a lock file for project under dir.
func Known(dir, project string) []string {
	matches, _ := filepath.Glob(filepath.Join(dir, project, "*.yaml"))
	var vs []string
	for _, m := range matches {
		vs = append(vs, strings.TrimSuffix(filepath.Base(m), ".yaml"))
	}
	sort.Strings(vs)
	return vs
}

// Validate checks that every entry is complete: each module has a path, a
// version and an h1 hash, and no vendor root appears twice.
func (l *Lock) Validate() error {
	var errs []error
	check := func(what string, m Module) {
		if m.Path == "" || m.Version == "" {
			errs = append(errs, fmt.Errorf("%s: module path and version are required", what))
		} else if err := module.Check(m.Path, m.Version); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
		} else if c := module.CanonicalVersion(m.Version); c != m.Version {
			errs = append(errs, fmt.Errorf("%s %s: version is not canonical (the proxy serves %s)", what, m, c))
		}
		if !strings.HasPrefix(m.H1, "h1:") {
			errs = append(errs, fmt.Errorf("%s %s: missing or malformed h1 hash %q", what, m, m.H1))
		}
	}
	if l.Project == "" || l.Version == "" {
		errs = append(errs, errors.New("project and version are required"))
	}
	check("source", l.Source.Module)
	if l.Source.CommitTime == "" || l.Source.ImportPath == "" {
		errs = append(errs, errors.New("source: commitTime and importPath are required"))
	}
	switch {
	case l.Source.Commit == "" && l.Source.CommitUnknown == "":
		errs = append(errs, errors.New("source: commit is required (or commitUnknown: why it is not known)"))
	case l.Source.Commit != "" && l.Source.CommitUnknown != "":
		errs = append(errs, fmt.Errorf("source: commit %s is set, so commitUnknown must be empty", l.Source.Commit))
	}
	check("toolchain", l.Toolchain)
	switch l.Source.Kind {
	case "":
		if l.GoMod != nil {
			errs = append(errs, fmt.Errorf("gomod: only for source.kind %s", SourceGoMod))
		}
	case SourceGoMod:
		errs = append(errs, l.validateGoMod())
	default:
		errs = append(errs, fmt.Errorf("source: unknown kind %q (want none or %s)", l.Source.Kind, SourceGoMod))
	}
	if l.Staging != nil && (l.Staging.Dir == "" || l.Staging.Prefix == "") {
		errs = append(errs, errors.New("staging: dir and prefix are required"))
	}
	if len(l.Build.Packages) == 0 {
		errs = append(errs, errors.New("build: no packages"))
	}
	if err := l.Fix.validate(l.Build); err != nil {
		errs = append(errs, err)
	}
	seen := map[string]bool{}
	for _, v := range l.Vendor {
		check("vendor "+v.Root, v.Module)
		if seen[v.Root] {
			errs = append(errs, fmt.Errorf("vendor %s: listed twice", v.Root))
		}
		seen[v.Root] = true
		if v.Override != nil && (v.Override.Fixes == "" || v.Override.DropWhen == "") {
			errs = append(errs, fmt.Errorf("vendor %s: an override needs fixes and dropWhen", v.Root))
		}
	}
	for _, v := range l.Vendor {
		for i := strings.LastIndex(v.Root, "/"); i > 0; i = strings.LastIndex(v.Root[:i], "/") {
			if seen[v.Root[:i]] {
				errs = append(errs, fmt.Errorf("vendor %s: inside vendor root %s; the modules would mix", v.Root, v.Root[:i]))
			}
		}
	}
	for _, e := range l.Excluded {
		if e.Reason == "" {
			errs = append(errs, fmt.Errorf("excluded %s: a reason is required", e.Root))
		}
	}
	return errors.Join(errs...)
}

// Modules returns every module zip the lock names (source, toolchain,
// vendor, or the go.mod graph's modules with a zip h1), in lock order, for
// downloading and checking. A go.mod lock's go.mod files: GoModFiles.
func (l *Lock) Modules() []Module {
	ms := []Module{l.Source.Module, l.Toolchain}
	for _, v := range l.Vendor {
		ms = append(ms, v.Module)
	}
	if l.GoMod != nil {
		ms = append(ms, l.GoMod.Zips()...)
	}
	return ms
}

// Digest is a sha256 (hex) of the lock's content, independent of comments
// and layout in the YAML: equal digests mean equal inputs, so a build step
// can tell that nothing changed and skip its work.
func (l *Lock) Digest() string {
	data, err := json.Marshal(l)
	if err != nil {
		panic(fmt.Sprintf("pins: marshal lock: %v", err)) // plain structs of strings cannot fail
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}
