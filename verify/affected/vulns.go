package affected

import (
	"slices"

	"golang.org/x/mod/semver"

	"github.com/nokmem/nokmem/verify/affected/vulnorder"
)

// Vulnerability is a known, fixed-upstream vulnerability of a runc or
// kubelet release: a record of the pinned Go vulnerability database
// (golang.org/x/vulndb, OSV form) or an entry of nokmem's reviewed
// supplement for what that database misses (CVE-2019-5736 in runc < rc7).
type Vulnerability struct {
	// ID is the OSV id (GO-2024-2491) or the supplement's id.
	ID string `json:"id"`
	// Aliases are the CVE ids (CVE-2024-21626).
	Aliases []string `json:"aliases,omitempty"`
	// Fixed lists the first fixed version of each release line, e.g.
	// v1.2.8 v1.3.3 v1.4.0-rc.3.
	Fixed []string `json:"fixed,omitempty"`
	// FixCommits are upstream or fork commits that carry the fix although
	// their version is in the affected range (Docker CE's a592beb5 carries
	// CVE-2019-5736's fix on rc5+dev). A binary whose commit is one of
	// these is not affected.
	FixCommits []string `json:"fix_commits,omitempty"`
	Summary    string   `json:"summary,omitempty"`
}

// vulnRange is one affected range [Introduced, Fixed) of a project.
type vulnRange struct{ Introduced, Fixed string }

// vulnRecord is a vulnerability with its affected ranges (canonical,
// "v"-prefixed versions; "" Introduced means from the first release,
// "" Fixed means no fix).
type vulnRecord struct {
	Project string
	Vulnerability
	Ranges []vulnRange
}

// Vulnerabilities lists the known vulnerabilities of the release v
// (project, version, commit): those whose affected ranges hold v's
// version and whose fix commits do not include v's commit. A nokmem build
// is its upstream version plus a kmem fix, so it carries the same list.
func Vulnerabilities(v Version) []Vulnerability {
	return vulnerabilitiesIn(generatedVulns, v)
}

func vulnerabilitiesIn(db []vulnRecord, v Version) []Vulnerability {
	var out []Vulnerability
	for _, r := range db {
		if r.Project != v.Project || !r.affects(v) {
			continue
		}
		out = append(out, r.Vulnerability)
	}
	return out
}

func (r *vulnRecord) affects(v Version) bool {
	if v.Commit != "" && slices.ContainsFunc(r.FixCommits, func(c string) bool { return sameCommit(c, v.Commit) }) {
		return false
	}
	for _, rg := range r.Ranges {
		if rg.Introduced != "" && CompareVuln(r.Project, v.Version, rg.Introduced) < 0 {
			continue
		}
		if rg.Fixed != "" && CompareVuln(r.Project, v.Version, rg.Fixed) >= 0 {
			continue
		}
		return true
	}
	return false
}

// OpenCount is len(Vulnerabilities(v)), for comparing two binaries: a
// replacement must not carry more known vulnerabilities than the binary
// it replaces.
func OpenCount(v Version) int { return len(Vulnerabilities(v)) }

// CompareVuln orders two versions of project's module for matching an
// affected range (vulnorder.Compare: Go semver, runc's pre-1.0 release
// candidates by number).
func CompareVuln(project, a, b string) int { return vulnorder.Compare(project == Runc, a, b) }

// CleanVersions are, per release line (major.minor), the first release of
// project that fixes a known vulnerability and has none left: the versions
// to upgrade to (runc: v1.3.7, v1.4.4 with the pinned database and the
// supplement).
func CleanVersions(project string) []string {
	best := map[string]string{}
	for _, r := range generatedVulns {
		if r.Project != project {
			continue
		}
		for _, f := range r.Fixed {
			if semver.Prerelease(f) != "" || OpenCount(Version{Project: project, Version: f}) != 0 {
				continue
			}
			line := semver.MajorMinor(f)
			if old, ok := best[line]; !ok || semver.Compare(f, old) < 0 {
				best[line] = f
			}
		}
	}
	out := make([]string, 0, len(best))
	for _, v := range best {
		out = append(out, v)
	}
	semver.Sort(out)
	return out
}
