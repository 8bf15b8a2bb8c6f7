package affected

import (
	"context"
	"testing"

	"github.com/nokmem/nokmem/verify/affected/affectedgen"
)

// TestVulnsGeneratedUpToDate fails when vulns_gen.go no longer matches the
// pinned vulnerability database and the supplement.
func TestVulnsGeneratedUpToDate(t *testing.T) {
	if err := affectedgen.CheckVulns(context.Background(), "../../vendor-pins", "vulns_gen.go"); err != nil {
		t.Fatal(err)
	}
}

// TestVulnerabilities: the known vulnerabilities of the runc versions users
// have, from the generated table: rc5 has CVE-2019-5736 (from the
// supplement) unless it is Docker CE 18.06.3's a592beb5, which carries the
// fix; rc10 is not affected by CVE-2019-19921 (fixed in a commit before
// rc10, which semver would order before it).
func TestVulnerabilities(t *testing.T) {
	for _, c := range []struct {
		v    Version
		want int
	}{
		{Version{Project: Runc, Version: "v1.0.0-rc5"}, 14},
		{Version{Project: Runc, Version: "v1.0.0-rc5", Commit: "a592beb5"}, 13},
		{Version{Project: Runc, Version: "v1.0.0-rc10"}, 11},
		{Version{Project: Runc, Version: "v1.0.0-rc93"}, 11},
		{Version{Project: Runc, Version: "v1.1.12"}, 6},
		{Version{Project: Runc, Version: "v1.3.6"}, 1},
		{Version{Project: Runc, Version: "v1.4.2"}, 2},
		{Version{Project: Runc, Version: "v1.4.4"}, 0},
	} {
		if got := OpenCount(c.v); got != c.want {
			t.Errorf("OpenCount(%s %s) = %d %v, want %d", c.v.Version, c.v.Commit, got, Vulnerabilities(c.v), c.want)
		}
	}
}

// TestCompareVuln: runc's old release candidates order numerically, its
// later "rc.N" candidates and everything else by semver (the affected code
// of Compare reads v1.4.0-rc.2 as a release after v1.4.0).
func TestCompareVuln(t *testing.T) {
	for _, c := range []struct {
		project, a, b string
		want          int
	}{
		{Runc, "v1.0.0-rc10", "v1.0.0-rc8.0.20190930145003-cad42f6e0932", 1},
		{Runc, "v1.0.0-rc6", "v1.0.0-rc95", -1},
		{Runc, "v1.0.0-rc93", "v1.0.0", -1},
		{Runc, "v1.4.0-rc.2", "v1.4.0-rc.3", -1},
		{Runc, "v1.4.0-rc.3", "v1.4.0", -1},
		{Runc, "v0.0.0-20180424185634-871ba2e58e24", "v1.0.0-rc7", -1},
		{Kubernetes, "v1.12.4", "v1.13.7", -1},
	} {
		if got := CompareVuln(c.project, c.a, c.b); got != c.want {
			t.Errorf("CompareVuln(%s, %s, %s) = %d, want %d", c.project, c.a, c.b, got, c.want)
		}
	}
}

func ids(vs []Vulnerability) map[string]bool {
	m := map[string]bool{}
	for _, v := range vs {
		m[v.ID] = true
		for _, a := range v.Aliases {
			m[a] = true
		}
	}
	return m
}

// TestVulnerabilitiesNamed: the records that matter by name.
func TestVulnerabilitiesNamed(t *testing.T) {
	rc5 := ids(Vulnerabilities(Version{Project: Runc, Version: "v1.0.0-rc5"}))
	docker := ids(Vulnerabilities(Version{Project: Runc, Version: "v1.0.0-rc5", Dev: true, Commit: "a592beb5bc4c"}))
	rc10 := ids(Vulnerabilities(Version{Project: Runc, Version: "v1.0.0-rc10"}))
	kubelet := ids(Vulnerabilities(Version{Project: Kubernetes, Version: "v1.12.4"}))
	for _, c := range []struct {
		what string
		got  bool
		want bool
	}{
		{"rc5 has CVE-2019-5736 (supplement)", rc5["CVE-2019-5736"], true},
		{"rc5 has CVE-2021-30465", rc5["CVE-2021-30465"], true},
		{"a592beb5 has no CVE-2019-5736", docker["CVE-2019-5736"], false},
		{"a592beb5 has CVE-2021-30465", docker["CVE-2021-30465"], true},
		{"rc10 has no CVE-2019-19921", rc10["CVE-2019-19921"], false},
		{"rc10 has CVE-2021-30465", rc10["CVE-2021-30465"], true},
		{"kubelet v1.12.4 has no CVE-2019-11245 (introduced in 1.13)", kubelet["CVE-2019-11245"], false},
		{"kubelet v1.12.4 has GO-2021-0066", kubelet["GO-2021-0066"], true},
		{"v1.3.6 has CVE-2026-119101 (supplement)", ids(Vulnerabilities(Version{Project: Runc, Version: "v1.3.6"}))["CVE-2026-119101"], true},
		{"v1.4.4 has no CVE-2026-119101", ids(Vulnerabilities(Version{Project: Runc, Version: "v1.4.4"}))["CVE-2026-119101"], false},
	} {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.what, c.got, c.want)
		}
	}
}

// TestCleanVersions: the runc releases to upgrade to have no known
// vulnerability; v1.2.8 (CVE-2026-41579 unfixed on its line) is not one.
func TestCleanVersions(t *testing.T) {
	got := CleanVersions(Runc)
	if len(got) == 0 {
		t.Fatal("no clean runc version")
	}
	for _, v := range got {
		if n := OpenCount(Version{Project: Runc, Version: v}); n != 0 || v == "v1.2.8" {
			t.Errorf("clean version %s has %d known vulnerabilities", v, n)
		}
	}
	t.Logf("clean runc versions: %v", got)
}
