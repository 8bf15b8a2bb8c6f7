package affected

import (
	"os"
	"strings"
	"testing"

	"golang.org/x/mod/semver"
)

// TestGeneratedUpToDate fails when matrix_gen.go no longer matches
// vendor-pins/matrix.yaml and its lock files.
func TestGeneratedUpToDate(t *testing.T) {
	if err := checkGenerated("../../vendor-pins", "matrix_gen.go"); err != nil {
		t.Fatal(err)
	}
}

// TestKnowledgeAgreesWithMatrix: the hand-written ranges of knowledge.go
// must agree with every version the matrix lists: same fix kind, an
// unaffected version in an unaffected range, and a locked kubelet's
// vendored runc named by its line.
func TestKnowledgeAgreesWithMatrix(t *testing.T) {
	for _, e := range generated.Versions {
		var fix string
		var inRange bool
		switch e.Project {
		case Kubernetes:
			for _, l := range kubeletLines {
				if semver.Compare(e.Version, l.From) >= 0 && (l.Below == "" || semver.Compare(e.Version, l.Below) < 0) {
					fix, inRange = l.Fix, true
					named := strings.Contains(l.Runc, e.Runc) || e.RuncRev != "" && strings.Contains(l.Runc, short(e.RuncRev))
					if e.Runc != "" && !named {
						t.Errorf("kubelet %s vendors runc %s %s (lock), knowledge.go says %q", e.Version, e.Runc, short(e.RuncRev), l.Runc)
					}
				}
			}
		case Runc:
			for _, l := range runcLines {
				if compareRunc(e.Version, l.From) >= 0 && (l.Below == "" || compareRunc(e.Version, l.Below) < 0) {
					fix, inRange = l.Fix, true
				}
			}
		}
		if !inRange {
			t.Errorf("%s %s: in no range of knowledge.go", e.Project, e.Version)
			continue
		}
		switch e.Status {
		case StatusUnaffected:
			if fix != "" {
				t.Errorf("%s %s: matrix says unaffected, knowledge.go says fix %s", e.Project, e.Version, fix)
			}
		case StatusBuildable, StatusPlanned:
			if want := e.Fix; fix != want && !(want == FixNone && fix == "") { // none: a runc that needs no fix
				t.Errorf("%s %s: matrix says fix %s, knowledge.go says %q", e.Project, e.Version, e.Fix, fix)
			}
		}
	}
	for _, d := range dockerCommits {
		for _, e := range generated.Versions {
			if sameCommit(d.Commit, e.Commit) {
				t.Errorf("Docker commit %s is in the matrix too (%s): keep it in one place", d.Commit[:8], e.Version)
			}
		}
	}
}

func TestCompareRunc(t *testing.T) {
	ordered := []string{"v0.1.1", "v1.0.0-rc2", "v1.0.0-rc5", "v1.0.0-rc5.0.20180309195151-69663f0bd4b6", "v1.0.0-rc6", "v1.0.0-rc6+dev", "v1.0.0-rc10", "v1.0.0-rc93", "v1.0.0-rc94", "v1.0.0", "v1.0.2", "v1.1.12"}
	for i := range ordered {
		for j := range ordered {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := compareRunc(ordered[i], ordered[j]); got != want {
				t.Errorf("compareRunc(%s, %s) = %d, want %d", ordered[i], ordered[j], got, want)
			}
		}
	}
}

// TestPublishedBuild: the committed sha256 of a matrix build is known by
// digest, nothing else is.
func TestPublishedBuild(t *testing.T) {
	b, err := os.ReadFile("../../vendor-pins/kubernetes/v1.12.4.CHECKSUMS")
	if err != nil {
		t.Fatal(err)
	}
	sum, _, _ := strings.Cut(string(b), " ")
	if p, ok := PublishedBuild(sum); !ok || p.Project != Kubernetes || p.Version != "v1.12.4" || p.Name != "kubelet" {
		t.Errorf("PublishedBuild(%s) = %+v, %v", sum, p, ok)
	}
	if p, ok := PublishedBuild(strings.Repeat("0", 64)); ok {
		t.Errorf("an unknown digest is published: %+v", p)
	}
}
