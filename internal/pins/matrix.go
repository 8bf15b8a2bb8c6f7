package pins

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"

	"sigs.k8s.io/yaml"
)

// MatrixFile is the version matrix, in the vendor-pins folder.
const MatrixFile = "matrix.yaml"

// Version statuses in the matrix.
const (
	// StatusBuildable: a lock file exists and the version builds from it.
	StatusBuildable = "buildable"
	// StatusLocked: a lock file exists and is checked (every h1, the
	// assembled tree, the fix, the kmem proof), but no sha256 is committed
	// yet (a full build has not been run twice): it builds on request, and
	// is neither in Buildable nor offered in a bundle.
	StatusLocked = "locked"
	// StatusPlanned: the sources are known to be served, but no lock exists yet.
	StatusPlanned = "planned"
	// StatusUnbuildable: an input cannot be fetched with a verified hash;
	// Reason says which, Nearest names the closest buildable version.
	StatusUnbuildable = "unbuildable"
	// StatusUnaffected: the version's libcontainer never activates kmem; nothing to fix.
	StatusUnaffected = "unaffected"
)

// Source kinds: where a version's dependency pins come from. A GOPATH tree
// is assembled from the first two; a go.mod tree (kubelet 1.15+, runc rc92+)
// is one more kind, assembled by the same pipeline with a module-mode tree.
const (
	SourceGodeps     = "godeps"     // Godeps/Godeps.json (kubernetes up to 1.14)
	SourceVendorConf = "vendorconf" // vendor.conf (runc up to rc10)
	SourceGoMod      = "gomod"      // go.mod
)

// ErrUnbuildable is returned for a version the matrix marks unbuildable.
var ErrUnbuildable = errors.New("not buildable")

// Matrix is vendor-pins/matrix.yaml: every version the project knows, its
// status and fix kind, and the kubelet/runc pairs offered as bundles.
type Matrix struct {
	Versions []MatrixEntry `json:"versions"`
	Bundles  []Bundle      `json:"bundles,omitempty"`
}

// MatrixEntry is one project version.
type MatrixEntry struct {
	Project string `json:"project"`
	Version string `json:"version"`
	Status  string `json:"status"`
	// Source is the kind of dependency manifest (SourceGodeps, SourceVendorConf, SourceGoMod).
	Source string `json:"source"`
	// Fix is the lock's fix kind (buildable and planned versions).
	Fix string `json:"fix,omitempty"`
	// Default marks the version built when a target gets no version.
	Default bool `json:"default,omitempty"`
	// Reason says why (unbuildable, unaffected, planned).
	Reason string `json:"reason,omitempty"`
	// Nearest (unbuildable) is the closest buildable (or planned) version of the project.
	Nearest string `json:"nearest,omitempty"`
	// Ships lists what ships this version (e.g. Docker CE releases for a runc commit).
	Ships []string `json:"ships,omitempty"`
	// Vulnerable marks a version with known, fixed vulnerabilities (every
	// runc before rc95: CVE-2021-30465, CVE-2024-21626 and more). It stays
	// buildable for users who must match an engine exactly; it is never the
	// default, and a bundle pairs it only when an engine ships it (Ships).
	Vulnerable bool `json:"vulnerable,omitempty"`
}

// Bundle is a kubelet and runc pair offered together.
type Bundle struct {
	Kubelet string `json:"kubelet"`
	Runc    string `json:"runc"`
	Note    string `json:"note,omitempty"`
}

// LoadMatrix reads and validates dir/matrix.yaml against the lock files in
// dir: a buildable version needs a valid lock whose fix kind is the
// matrix's, and an unbuildable one a reason and a buildable nearest version.
func LoadMatrix(dir string) (*Matrix, error) {
	p := filepath.Join(dir, MatrixFile)
	m, err := readMatrix(p)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, e := range m.Versions {
		if e.Status != StatusBuildable && e.Status != StatusLocked {
			continue
		}
		if err := checkLock(dir, e); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return m, nil
}

// checkedLocks remembers, for the life of the process, the lock files that
// LoadMatrix found valid for a matrix entry, by path, file identity (size,
// modification time, change time, inode) and fix kind. A build loads the
// matrix in several steps, and parsing every kubelet lock (70-100 kB of
// YAML each) again was most of a no-op build's time; a changed lock file
// has a new identity and is parsed again.
var checkedLocks sync.Map

// checkLock checks that the lock of a buildable or locked entry is valid
// and has the entry's fix kind.
func checkLock(dir string, e MatrixEntry) error {
	p := Path(dir, e.Project, e.Version)
	key := ""
	if fi, err := os.Stat(p); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			key = fmt.Sprintf("%s\x00%d %d %d.%d %d\x00%s", p, fi.Size(), fi.ModTime().UnixNano(), st.Ctim.Sec, st.Ctim.Nsec, st.Ino, e.Fix)
			if _, ok := checkedLocks.Load(key); ok {
				return nil
			}
		}
	}
	l, err := loadLock(dir, e.Project, e.Version)
	if err != nil {
		return fmt.Errorf("%s %s is %s: %w", e.Project, e.Version, e.Status, err)
	}
	if l.Fix.Kind != e.Fix {
		return fmt.Errorf("%s %s: matrix says fix %s, the lock says %s", e.Project, e.Version, e.Fix, l.Fix.Kind)
	}
	if key != "" {
		checkedLocks.Store(key, true)
	}
	return nil
}

// readMatrix parses and checks the matrix on its own (no lock files).
func readMatrix(p string) (*Matrix, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	var m Matrix
	if err := yaml.UnmarshalStrict(data, &m); err != nil {
		return nil, fmt.Errorf("parse %s: %w", p, err)
	}
	if err := m.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return &m, nil
}

func (m *Matrix) validate() error {
	var errs []error
	seen := map[string]bool{}
	defaults := map[string]int{}
	for _, e := range m.Versions {
		id := e.Project + " " + e.Version
		bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(id+": "+format, a...)) }
		if e.Project == "" || e.Version == "" {
			errs = append(errs, fmt.Errorf("matrix entry %+v: project and version are required", e))
			continue
		}
		if seen[id] {
			bad("listed twice")
		}
		seen[id] = true
		if !slices.Contains([]string{SourceGodeps, SourceVendorConf, SourceGoMod}, e.Source) {
			bad("source %q is not %s, %s or %s", e.Source, SourceGodeps, SourceVendorConf, SourceGoMod)
		}
		if e.Default {
			defaults[e.Project]++
		}
		switch e.Status {
		case StatusBuildable, StatusPlanned, StatusLocked:
			if !slices.Contains(FixKinds, e.Fix) {
				bad("fix %q is not one of %v", e.Fix, FixKinds)
			}
			if (e.Status == StatusPlanned || e.Status == StatusLocked) && e.Reason == "" {
				bad("a %s version needs a reason (what is missing)", e.Status)
			}
		case StatusUnbuildable:
			if e.Reason == "" || e.Nearest == "" {
				bad("an unbuildable version needs a reason and the nearest buildable version")
			} else if n := m.Entry(e.Project, e.Nearest); n == nil || (n.Status != StatusBuildable && n.Status != StatusLocked && n.Status != StatusPlanned) {
				bad("nearest %s is not a buildable, locked or planned version in the matrix", e.Nearest)
			}
		case StatusUnaffected:
			if e.Reason == "" {
				bad("an unaffected version needs a reason")
			}
		default:
			bad("status %q is not %s, %s, %s, %s or %s", e.Status, StatusBuildable, StatusLocked, StatusPlanned, StatusUnbuildable, StatusUnaffected)
		}
		if e.Default && e.Status != StatusBuildable {
			bad("the default version must be buildable")
		}
		if e.Default && e.Vulnerable {
			bad("the default version must not be vulnerable")
		}
	}
	for project, n := range defaults {
		if n > 1 {
			errs = append(errs, fmt.Errorf("%s: %d default versions, want one", project, n))
		}
	}
	for _, b := range m.Bundles {
		for _, pv := range [][2]string{{"kubernetes", b.Kubelet}, {"runc", b.Runc}} {
			if e := m.Entry(pv[0], pv[1]); e == nil || e.Status != StatusBuildable {
				errs = append(errs, fmt.Errorf("bundle kubelet %s + runc %s: %s %s is not a buildable version in the matrix", b.Kubelet, b.Runc, pv[0], pv[1]))
			}
		}
		if r := m.Entry("runc", b.Runc); r != nil && r.Vulnerable && len(r.Ships) == 0 {
			errs = append(errs, fmt.Errorf("bundle kubelet %s + runc %s: runc %s is vulnerable and no engine ships it (ships:), so the pair must use the default runc %s", b.Kubelet, b.Runc, b.Runc, m.Default("runc")))
		}
	}
	return errors.Join(errs...)
}

// Entry returns project@version's entry, or nil.
func (m *Matrix) Entry(project, version string) *MatrixEntry {
	for i := range m.Versions {
		if m.Versions[i].Project == project && m.Versions[i].Version == version {
			return &m.Versions[i]
		}
	}
	return nil
}

// Vulnerable reports whether the pair has a version marked vulnerable.
func (m *Matrix) Vulnerable(b Bundle) bool {
	for _, pv := range [][2]string{{"kubernetes", b.Kubelet}, {"runc", b.Runc}} {
		if e := m.Entry(pv[0], pv[1]); e != nil && e.Vulnerable {
			return true
		}
	}
	return false
}

// Default returns the project's default version ("" when none).
func (m *Matrix) Default(project string) string {
	for _, e := range m.Versions {
		if e.Project == project && e.Default {
			return e.Version
		}
	}
	return ""
}

// Buildable lists the project's buildable versions in matrix order.
func (m *Matrix) Buildable(project string) []string {
	var vs []string
	for _, e := range m.Versions {
		if e.Project == project && e.Status == StatusBuildable {
			vs = append(vs, e.Version)
		}
	}
	return vs
}

// Locked lists the project's locked versions (lock checked, no committed
// sha256 yet) in matrix order.
func (m *Matrix) Locked(project string) []string {
	var vs []string
	for _, e := range m.Versions {
		if e.Project == project && e.Status == StatusLocked {
			vs = append(vs, e.Version)
		}
	}
	return vs
}

// Refuse returns an error for a version the matrix says cannot or need
// not be built (unbuildable, unaffected, planned), naming the reason and,
// for an unbuildable one, the nearest buildable version; nil otherwise.
func (e *MatrixEntry) Refuse() error {
	switch e.Status {
	case StatusUnbuildable:
		return fmt.Errorf("%s %s: %w: %s; the nearest buildable version is %s", e.Project, e.Version, ErrUnbuildable, e.Reason, e.Nearest)
	case StatusUnaffected:
		return fmt.Errorf("%s %s: %w: unaffected, nothing to fix: %s", e.Project, e.Version, ErrUnbuildable, e.Reason)
	case StatusPlanned:
		return fmt.Errorf("%s %s: %w yet: no lock file: %s", e.Project, e.Version, ErrUnbuildable, e.Reason)
	}
	return nil
}
