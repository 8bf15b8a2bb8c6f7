// Package affected knows which stock kubelet and runc versions activate
// kernel-memory (kmem) accounting on the cgroupfs driver, and which nokmem
// build fixes each: the version knowledge of vendor-pins/matrix.yaml (and
// its lock files), generated into matrix_gen.go by `go tool mage
// verify:genAffected` because a node has no vendor-pins/, plus the ranges
// and Docker CE runc commits of knowledge.go.
//
// Parse reads the `--version` output of kubelet, runc or docker-runc;
// Classify says affected, unaffected or unknown, why, and what fixes it:
// the matrix version with the same fix kind, and the bundle (kubelet/runc
// pair of matrix.yaml's bundles:) that contains it.
package affected

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
)

// Verdicts.
const (
	Affected   = "affected"
	Unaffected = "unaffected"
	Unknown    = "unknown"
)

// Fix kinds (as in vendor-pins/matrix.yaml). FixNone marks a matrix runc
// that needs no fix (its cgroupfs driver never activates kmem): the
// maintained runc every bundle ships by default, and the fix offered for
// every affected runc (docs/runc.md).
const (
	FixPatch    = "patch"
	FixBuildTag = "buildtag"
	FixNone     = "none"
)

// Projects (as in vendor-pins/matrix.yaml).
const (
	Kubernetes = "kubernetes"
	Runc       = "runc"
)

// Matrix statuses (as in vendor-pins/matrix.yaml).
const (
	StatusBuildable   = "buildable"
	StatusPlanned     = "planned"
	StatusUnbuildable = "unbuildable"
	StatusUnaffected  = "unaffected"
)

// BundlePrefix starts a bundle's name: nokmem-<kubelet>-<runc>+<marker>.
const BundlePrefix = "nokmem-"

// Matrix is the generated copy of vendor-pins/matrix.yaml.
type Matrix struct {
	Versions []Entry
	Bundles  []Bundle
	// Published are the sha256 digests of every nokmem build this project
	// published: the committed CHECKSUMS of every buildable matrix version.
	Published []Published
}

// Published is one nokmem build of the matrix, by its sha256.
type Published struct {
	SHA256, Name, Project, Version string
}

// PublishedBuild returns the nokmem build of the matrix whose sha256 is
// sum: a binary is a nokmem build of this project only when its digest is
// one of these (or one the operator lists with --known-sums).
func PublishedBuild(sum string) (Published, bool) {
	for _, p := range generated.Published {
		if p.SHA256 == sum {
			return p, true
		}
	}
	return Published{}, false
}

// Entry is one version of the matrix.
type Entry struct {
	Project, Version, Status, Fix, Reason, Nearest string
	Ships                                          []string
	// Commit is the upstream commit (the lock's, or a pseudo-version's
	// revision prefix); "" when unknown.
	Commit string
	// Runc is, for a kubelet with a lock, the vendored runc module version
	// and RuncRev its upstream revision.
	Runc, RuncRev string
}

// Bundle is a kubelet/runc pair offered as one node bundle.
type Bundle struct{ Kubelet, Runc string }

// Name is the bundle's name without the build marker.
func (b Bundle) Name() string { return BundlePrefix + b.Kubelet + "-" + b.Runc }

// Version is what a binary's --version output says.
type Version struct {
	Project string `json:"project"`
	// Version is canonical: v1.12.4, v1.0.0-rc5 (build metadata such as
	// +dev or +nokmem.… dropped, see Dev and Nokmem).
	Version string `json:"version"`
	// Dev: the version had +dev (built from a commit after the tag).
	Dev bool `json:"dev,omitempty"`
	// Commit is runc's "commit:" line (a hash, or the hash of a git describe).
	Commit string `json:"commit,omitempty"`
	// Nokmem: the version carries nokmem's +nokmem marker.
	Nokmem bool `json:"nokmem,omitempty"`
}

var (
	kubeletRE = regexp.MustCompile(`(?m)^Kubernetes (v\d+\.\d+\.\d+)(\S*)`)
	runcRE    = regexp.MustCompile(`(?m)^runc version v?(\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?)(\+\S*)?`)
	commitRE  = regexp.MustCompile(`(?m)^commit: *(?:\S*-g)?([0-9a-f]{7,40})\b`)
)

// Parse reads the --version output of kubelet, runc or docker-runc (name
// as in Names of verify/binary). ok is false when the output is not
// recognised.
func Parse(name, out string) (v Version, ok bool) {
	switch name {
	case "kubelet":
		m := kubeletRE.FindStringSubmatch(out)
		if m == nil {
			return v, false
		}
		v = Version{Project: Kubernetes, Version: m[1], Nokmem: strings.Contains(m[2], "+nokmem")}
		return v, semver.IsValid(v.Version)
	case "runc", "docker-runc":
		m := runcRE.FindStringSubmatch(out)
		if m == nil {
			return v, false
		}
		v = Version{Project: Runc, Version: "v" + m[1], Dev: strings.HasPrefix(m[2], "+dev"), Nokmem: strings.HasPrefix(m[2], "+nokmem")}
		if c := commitRE.FindStringSubmatch(out); c != nil {
			v.Commit = c[1]
		}
		return v, semver.IsValid(v.Version)
	}
	return v, false
}

// Finding is what nokmem knows about a stock version.
type Finding struct {
	Version
	// Verdict is Affected, Unaffected or Unknown.
	Verdict string `json:"verdict"`
	// Reason says why, e.g. "kubelet v1.12.4 vendors runc 871ba2e5: its
	// MemoryGroup.Apply activates kmem on the cgroupfs driver".
	Reason string `json:"reason"`
	// Proven: the version itself is buildable in nokmem's matrix, so its
	// kmem proof (libcontainer's own Apply against the 3.10 simulator) ran.
	Proven bool `json:"proven,omitempty"`
	// Ships lists the Docker CE releases that ship this runc commit.
	Ships []string `json:"ships,omitempty"`
	// Fix is the fix kind (FixPatch, FixBuildTag) of an affected version.
	Fix string `json:"fix,omitempty"`
	// FixVersion is the matrix version that fixes it (same fix kind; same
	// minor line for a kubelet) and FixStatus its matrix status.
	FixVersion string `json:"fix_version,omitempty"`
	FixStatus  string `json:"fix_status,omitempty"`
	// Bundle is the bundle (without its build marker) that contains
	// FixVersion, "" when no bundle pairs it yet.
	Bundle string `json:"bundle,omitempty"`
	// Bundles are all the bundles that contain FixVersion (several for a
	// runc paired with more than one kubelet line); see PreferKubelet.
	Bundles []Bundle `json:"-"`
	// Remedy is what to do, one sentence.
	Remedy string `json:"remedy"`
	// NokmemTag: the binary was built with -tags nokmem (it holds
	// KmemDisabledError), so whatever its version, it does not activate kmem.
	NokmemTag bool `json:"nokmem_tag,omitempty"`
}

// KmemDisabledError is the error of libcontainer's kmem_disabled.go from
// runc v1.0.0-rc7 on (setKernelMemory under `-tags nokmem`). No other
// libcontainer file has it, so a binary that holds this string was built
// with the tag; a binary built without it does not hold it. (rc6's and
// f000fe11's kmem_disabled.go return nil: their tagged builds cannot be
// told apart this way.)
const KmemDisabledError = "kernel memory accounting disabled in this runc build"

// BuiltWithNokmemTag records that the binary holds KmemDisabledError: it
// does not activate kmem, whatever its version says.
func (f *Finding) BuiltWithNokmemTag() {
	f.NokmemTag = true
	if f.Verdict == Unaffected {
		return
	}
	f.Verdict = Unaffected
	f.Reason = fmt.Sprintf("built with -tags nokmem (the binary holds kmem_disabled.go's error %q): %s", KmemDisabledError, f.Reason)
	f.Fix, f.FixVersion, f.FixStatus, f.Bundle, f.Remedy = "", "", "", "", ""
}

// Classify says whether the stock binary name (kubelet, runc,
// docker-runc) that printed out for --version activates kmem, and what
// fixes it. An unrecognised output gives Verdict Unknown.
func Classify(name, out string) Finding {
	v, ok := Parse(name, out)
	if !ok {
		return Finding{Verdict: Unknown, Reason: fmt.Sprintf("unrecognised %s --version output", name), Remedy: "check the binary by hand"}
	}
	return classify(&generated, v)
}

func classify(m *Matrix, v Version) Finding {
	if v.Project == Kubernetes {
		return classifyKubelet(m, v)
	}
	return classifyRunc(m, v)
}

func classifyKubelet(m *Matrix, v Version) Finding {
	f := Finding{Version: v}
	e := m.entry(Kubernetes, v.Version)
	var line *kubeletLine
	for i := range kubeletLines {
		l := &kubeletLines[i]
		if semver.Compare(v.Version, l.From) >= 0 && (l.Below == "" || semver.Compare(v.Version, l.Below) < 0) {
			line = l
		}
	}
	switch {
	case e != nil && e.Status == StatusUnaffected:
		f.Verdict, f.Reason = Unaffected, fmt.Sprintf("kubelet %s: %s", v.Version, e.Reason)
		return f
	case line == nil:
		f.Verdict = Unknown
		f.Reason = fmt.Sprintf("kubelet %s is older than %s, the first release nokmem classifies", v.Version, kubeletLines[0].From)
		f.Remedy = "check its vendored runc by hand (Godeps/Godeps.json)"
		return f
	case line.Fix == "":
		f.Verdict, f.Reason = Unaffected, fmt.Sprintf("kubelet %s vendors %s, whose MemoryGroup.Apply does not activate kmem", v.Version, line.Runc)
		return f
	}
	f.Verdict, f.Fix = Affected, line.Fix
	runc := line.Runc
	if e != nil && e.RuncRev != "" {
		runc = "runc " + short(e.RuncRev)
	}
	f.Reason = fmt.Sprintf("kubelet %s vendors %s: MemoryGroup.Apply activates kmem on the cgroupfs driver", v.Version, runc)
	if e != nil && e.Status == StatusBuildable {
		f.Proven = true
		f.Reason += " (nokmem's kmem proof of this version)"
	}
	minor := semver.MajorMinor(v.Version)
	m.fix(&f, Kubernetes, func(c Entry) bool { return semver.MajorMinor(c.Version) == minor && c.Fix == line.Fix }, compareKubelet, v.Version, "kubelet "+minor)
	if e != nil && e.Status == StatusUnbuildable {
		f.Remedy = fmt.Sprintf("%s is not buildable (%s); %s", e.Version, e.Reason, f.Remedy)
	}
	return f
}

func classifyRunc(m *Matrix, v Version) Finding {
	f := Finding{Version: v}
	base := v.Version
	known := false // the commit is one of dockerCommits
	// A known commit decides: a matrix version (a Docker CE commit or a
	// locked release), or a Docker CE 18.09 commit of knowledge.go.
	var exact *Entry
	if v.Commit != "" {
		for i := range m.Versions {
			if e := &m.Versions[i]; e.Project == Runc && sameCommit(e.Commit, v.Commit) {
				exact = e
			}
		}
		if exact == nil {
			for _, d := range dockerCommits {
				if sameCommit(d.Commit, v.Commit) {
					base, f.Ships, known = d.Base, d.Ships, true
				}
			}
		}
	}
	if exact == nil && !v.Dev && v.Commit == "" {
		exact = m.entry(Runc, v.Version)
	}
	if exact == nil && !v.Dev && v.Commit != "" {
		// A release prints its own commit: trust the version when the
		// matrix's entry has no commit to compare with.
		if e := m.entry(Runc, v.Version); e != nil && (e.Commit == "" || sameCommit(e.Commit, v.Commit)) {
			exact = e
		}
	}
	what := "runc " + v.Version
	if v.Dev {
		what += "+dev"
	}
	if v.Commit != "" {
		what += " (commit " + short(v.Commit) + ")"
	}
	if exact != nil {
		f.Ships = exact.Ships
		base = exact.Version
	}
	if len(f.Ships) > 0 {
		what += " as in " + strings.Join(f.Ships, ", ")
	}
	if exact != nil && exact.Status == StatusUnaffected {
		f.Verdict, f.Reason = Unaffected, what+": "+exact.Reason
		return f
	}
	var line *runcLine
	for i := range runcLines {
		l := &runcLines[i]
		if compareRunc(base, l.From) >= 0 && (l.Below == "" || compareRunc(base, l.Below) < 0) {
			line = l
		}
	}
	switch {
	case line == nil:
		f.Verdict, f.Reason = Unknown, fmt.Sprintf("%s is older than %s, the first release nokmem classifies", what, runcLines[0].From)
		f.Remedy = "check its libcontainer by hand"
		return f
	case exact == nil && !known && v.Dev && compareRunc(base, lastAffectedRunc) == 0:
		// Between the last affected release and the first unaffected one.
		f.Verdict, f.Reason = Unknown, what+": built from a commit between "+lastAffectedRunc+" and "+line.Below+", before or after opencontainers/runc#2840"
		f.Remedy = "check its libcontainer by hand"
		return f
	case line.Fix == "":
		f.Verdict, f.Reason = Unaffected, what+": "+line.Why
		return f
	}
	f.Verdict, f.Fix, f.Reason = Affected, line.Fix, what+": "+line.Why
	if exact != nil && exact.Status == StatusBuildable {
		f.Proven = true
		f.Reason += " (nokmem's kmem proof of this version)"
	}
	if r := m.maintainedRunc(); r != nil {
		// The maintained runc fixes kmem for every affected runc, without
		// the old releases' known container escapes.
		m.offer(&f, r)
		return f
	}
	if exact != nil {
		m.fixExact(&f, exact)
		return f
	}
	// A release's fix is the matrix release with the same fix kind; the
	// pseudo-versions of Docker's commits are offered only for themselves.
	after := base
	if v.Dev {
		after += "+dev" // later than base: a release not older than it is base's successor
	}
	m.fix(&f, Runc, func(c Entry) bool { return c.Fix == line.Fix && !module.IsPseudoVersion(c.Version) }, compareRunc, after, "runc with fix "+line.Fix)
	return f
}

// fixExact fills the fix of a version the matrix lists itself.
func (m *Matrix) fixExact(f *Finding, e *Entry) {
	switch e.Status {
	case StatusBuildable:
		m.offer(f, e)
	case StatusUnbuildable:
		n := m.entry(e.Project, e.Nearest)
		m.offer(f, n)
		f.Remedy = fmt.Sprintf("%s is not buildable (%s); nearest: %s", e.Version, e.Reason, f.Remedy)
	default:
		f.FixVersion, f.FixStatus = e.Version, e.Status
		f.Remedy = fmt.Sprintf("no nokmem build yet: %s %s is %s (%s)", e.Project, e.Version, e.Status, e.Reason)
	}
}

// fix picks the matrix version that fixes f: among the project's entries
// that match, a buildable one (the lowest not older than v, else the
// newest), else a planned one.
func (m *Matrix) fix(f *Finding, project string, match func(Entry) bool, cmp func(a, b string) int, v, what string) {
	for _, status := range []string{StatusBuildable, StatusPlanned} {
		var cands []*Entry
		for i := range m.Versions {
			if c := &m.Versions[i]; c.Project == project && c.Status == status && match(*c) {
				cands = append(cands, c)
			}
		}
		if len(cands) == 0 {
			continue
		}
		slices.SortFunc(cands, func(a, b *Entry) int { return cmp(a.Version, b.Version) })
		pick := cands[len(cands)-1]
		for _, c := range cands {
			if cmp(c.Version, v) >= 0 {
				pick = c
				break
			}
		}
		m.fixExact(f, pick)
		return
	}
	f.Remedy = fmt.Sprintf("no nokmem version of %s in the matrix yet (fix kind %s): add one (docs/versions.md, \"How to add a version\")", what, f.Fix)
}

// offer names e (buildable) as the fix, with its bundle when one pairs it.
// A runc may come in several bundles (one per kubelet line): Bundle is the
// first, and Remedy names them all, since the one to install is the one
// whose kubelet is the node's (verify install refuses another minor).
func (m *Matrix) offer(f *Finding, e *Entry) {
	f.FixVersion, f.FixStatus = e.Version, e.Status
	bundles := m.Bundles
	if r := m.maintainedRunc(); r != nil && e.Project == Kubernetes {
		// A kubelet comes with the maintained runc where a bundle pairs them.
		with := slices.DeleteFunc(slices.Clone(bundles), func(b Bundle) bool { return b.Kubelet != e.Version || b.Runc != r.Version })
		if len(with) > 0 {
			bundles = with
		}
	}
	var names []string
	for _, b := range bundles {
		if e.Project == Kubernetes && b.Kubelet == e.Version || e.Project == Runc && b.Runc == e.Version {
			names = append(names, b.Name())
			f.Bundles = append(f.Bundles, b)
		}
	}
	switch {
	case len(names) == 1:
		f.Bundle = names[0]
		f.Remedy = "install bundle " + f.Bundle + " (verify install --bundle)"
		return
	case len(names) > 1:
		f.Bundle = names[0]
		f.Remedy = "install the bundle whose kubelet is the node's: " + strings.Join(names, ", ") + " (verify install --bundle)"
		return
	}
	target := "kubelet"
	if e.Project == Runc {
		target = "runc"
	}
	f.Remedy = fmt.Sprintf("build it: go tool mage %s:build %s (no bundle pairs it yet)", target, e.Version)
}

// PreferKubelet narrows a runc fix offered in several bundles to the one
// whose kubelet is of the node's kubelet minor release (kubelet: its
// version, e.g. v1.12.4): that is the bundle verify install accepts.
func (f *Finding) PreferKubelet(kubelet string) {
	if len(f.Bundles) < 2 || !semver.IsValid(kubelet) {
		return
	}
	for _, b := range f.Bundles {
		if semver.MajorMinor(b.Kubelet) == semver.MajorMinor(kubelet) {
			f.Bundle = b.Name()
			f.Remedy = "install bundle " + f.Bundle + " (verify install --bundle)"
			return
		}
	}
}

// maintainedRunc is the matrix's buildable runc with fix none (the newest
// if several), nil when there is none.
func (m *Matrix) maintainedRunc() *Entry {
	var best *Entry
	for i := range m.Versions {
		if e := &m.Versions[i]; e.Project == Runc && e.Status == StatusBuildable && e.Fix == FixNone && (best == nil || compareRunc(e.Version, best.Version) > 0) {
			best = e
		}
	}
	return best
}

func (m *Matrix) entry(project, version string) *Entry {
	for i := range m.Versions {
		if e := &m.Versions[i]; e.Project == project && e.Version == version {
			return e
		}
	}
	return nil
}

// sameCommit: one hash is a prefix of the other (at least 7 hex digits).
func sameCommit(a, b string) bool {
	if len(a) < 7 || len(b) < 7 {
		return false
	}
	if len(a) > len(b) {
		a, b = b, a
	}
	return strings.HasPrefix(b, a)
}

func short(c string) string {
	if len(c) > 8 {
		return c[:8]
	}
	return c
}

// Compare orders two versions of project (Kubernetes or Runc) as releases
// follow each other; for runc, rcN numerically.
func Compare(project, a, b string) int {
	if project == Runc {
		return compareRunc(a, b)
	}
	return compareKubelet(a, b)
}

func compareKubelet(a, b string) int { return semver.Compare(a, b) }

// compareRunc orders runc versions: rcN numerically (semver compares
// "rc10" < "rc6" as text), a pseudo-version or a +dev build after its
// release (v1.0.0-rc5.0.2018… is a later commit than rc5), a final
// release after its release candidates.
func compareRunc(a, b string) int {
	ka, kb := runcKey(a), runcKey(b)
	if c := semver.Compare(semver.Canonical(ka.core), semver.Canonical(kb.core)); c != 0 {
		return c
	}
	for _, d := range [][2]int{{ka.rc, kb.rc}, {ka.after, kb.after}} {
		if d[0] != d[1] {
			if d[0] < d[1] {
				return -1
			}
			return 1
		}
	}
	return 0
}

type runcOrder struct {
	core      string
	rc, after int
}

func runcKey(v string) runcOrder {
	v, build, _ := strings.Cut(v, "+")
	core, pre, _ := strings.Cut(v, "-")
	k := runcOrder{core: core, rc: 1 << 30}
	if build == "dev" {
		k.after = 1
	}
	if pre == "" {
		return k
	}
	rc, rest, more := strings.Cut(pre, ".")
	if n, err := strconv.Atoi(strings.TrimPrefix(rc, "rc")); err == nil && strings.HasPrefix(rc, "rc") {
		k.rc = n
	}
	if more && rest != "" {
		k.after = 1
	}
	return k
}
