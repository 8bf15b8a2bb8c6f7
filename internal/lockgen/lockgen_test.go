package lockgen

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nokmem/nokmem/internal/pins"
)

// fakeResolver serves versions from a map; commit queries resolve only
// through commits (as a proxy that knows them), else they fail with the
// resolved version, as proxy.golang.org does for a refused canonical form.
type fakeResolver struct {
	served  map[string]Download // path@version
	commits map[string]string   // path@commit -> resolved version (served or not)
	asked   []string
}

func (f *fakeResolver) Download(_ context.Context, path, query string) (Download, error) {
	f.asked = append(f.asked, path+"@"+query)
	if d, ok := f.served[path+"@"+query]; ok {
		return d, nil
	}
	if v, ok := f.commits[path+"@"+query]; ok {
		if d, ok := f.served[path+"@"+v]; ok {
			return d, nil
		}
		return Download{}, &DownloadError{Query: path + "@" + query, Resolved: v, Msg: "403 Forbidden"}
	}
	return Download{}, &DownloadError{Query: path + "@" + query, Msg: "not found"}
}

func mod(path, version string) Download {
	return Download{Module: pins.Module{Path: path, Version: version, H1: "h1:" + strings.ReplaceAll(path+version, "/", "") + "="}}
}

func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const (
	revA = "aaaaaaaaaaaa1111111111111111111111111111"
	revB = "bbbbbbbbbbbb2222222222222222222222222222"
	revC = "cccccccccccc3333333333333333333333333333"
	revD = "dddddddddddd4444444444444444444444444444"
	revE = "eeeeeeeeeeee5555555555555555555555555555"
	revX = "ffffffffffff6666666666666666666666666666"
)

func template() *pins.Lock {
	return &pins.Lock{
		Project: "runc", Version: "v1.0.0-rc5",
		Source:    pins.Source{Module: pins.Module{Path: "github.com/opencontainers/runc", Version: "v1.0.0-rc5", H1: "h1:src5="}, Commit: "c5", CommitTime: "2018-01-01T00:00:00Z", ImportPath: "github.com/opencontainers/runc"},
		Toolchain: pins.Module{Path: "golang.org/toolchain", Version: "v0.0.1-go1.26.11.linux-amd64", H1: "h1:tc="},
		Fix:       pins.Fix{Kind: pins.FixPatch},
		Build:     pins.Build{Packages: []pins.BuildPackage{{Package: ".", Output: "runc"}}, Tags: []string{"seccomp"}, LDFlagsX: []string{"main.version=1.0.0-rc5+{{.Marker}}"}},
		Vendor: []pins.VendorEntry{
			{Root: "github.com/a/a", Module: pins.Module{Path: "github.com/a/a", Version: "v1.0.0", H1: "h1:a="}, UpstreamRev: revA, Found: "by hand"},
			{Root: "github.com/o/o", Module: pins.Module{Path: "github.com/o/o", Version: "v1.0.2", H1: "h1:o="}, UpstreamRev: revX,
				Override: &pins.Override{Fixes: "a crash", DropWhen: "never"}},
		},
		Excluded: []pins.Excluded{{Root: "github.com/tool/t", UpstreamRev: revX, Reason: "build tool"}, {Root: "github.com/tool/u", UpstreamRev: revA, Reason: "commit refused"}},
	}
}

func TestGenerate(t *testing.T) {
	src := writeTree(t, map[string]string{
		"vendor.conf": "github.com/a/a " + revA + "\ngithub.com/b/b " + revB + "\ngithub.com/c/c " + revC + "\n" +
			"github.com/d/d " + revD + "\ngithub.com/h/h " + revE + "\ngithub.com/o/o " + revB + "\ngithub.com/tool/t " + revX + "\ngithub.com/tool/u " + revB + "\ngithub.com/t/tag v1.2.0\n",
		"libcontainer/cgroups/fs/kmem_disabled.go": "package fs\n",
	})
	r := &fakeResolver{
		served: map[string]Download{
			"github.com/opencontainers/runc@v1.0.0-rc6":         {Module: pins.Module{Path: "github.com/opencontainers/runc", Version: "v1.0.0-rc6", H1: "h1:src6="}, Dir: src, Time: "2018-11-21T02:54:59Z"},
			"github.com/b/b@v0.0.0-20190101000000-bbbbbbbbbbbb": mod("github.com/b/b", "v0.0.0-20190101000000-bbbbbbbbbbbb"),
			"github.com/c/c@v0.0.0-20190202000000-cccccccccccc": mod("github.com/c/c", "v0.0.0-20190202000000-cccccccccccc"),
			"github.com/h/h@v0.0.0-20190303000000-eeeeeeeeeeee": mod("github.com/h/h", "v0.0.0-20190303000000-eeeeeeeeeeee"),
			"github.com/t/tag@v1.2.0":                           mod("github.com/t/tag", "v1.2.0"),
		},
		commits: map[string]string{
			"github.com/b/b@" + revB: "v0.0.0-20190101000000-bbbbbbbbbbbb",
			"github.com/c/c@" + revC: "v1.0.1-0.20190202000000-cccccccccccc", // canonical refused, v0.0.0 served
			"github.com/d/d@" + revD: "v0.0.0-20190404000000-dddddddddddd",   // nothing served
		},
	}
	hints := []Hint{
		{Path: "github.com/h/h", Version: "v0.0.0-20190303000000-eeeeeeeeeeee", Note: "git history"},
		{Path: "github.com/b/b", Version: "v0.0.0-20180101000000-999999999999", Note: "another commit: never used"},
	}
	l, unpinned, err := Generate(context.Background(), r, Request{Project: "runc", Version: "v1.0.0-rc6", Commit: "c6", Template: template(), Known: []*pins.Lock{template()}, Hints: hints})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]pins.VendorEntry{}
	for _, v := range l.Vendor {
		got[v.Root] = v
	}
	checks := []struct {
		name string
		ok   bool
	}{
		{"source", l.Source.Module.H1 == "h1:src6=" && l.Source.CommitTime == "2018-11-21T02:54:59Z" && l.Source.Commit == "c6"},
		{"reused a", got["github.com/a/a"].Module.H1 == "h1:a=" && strings.HasPrefix(got["github.com/a/a"].Found, "same rev as runc v1.0.0-rc5")},
		{"commit b", got["github.com/b/b"].Module.Version == "v0.0.0-20190101000000-bbbbbbbbbbbb"},
		{"c in the v0.0.0 form", got["github.com/c/c"].Module.Version == "v0.0.0-20190202000000-cccccccccccc"},
		{"h from the hint", got["github.com/h/h"].Module.Version == "v0.0.0-20190303000000-eeeeeeeeeeee" && strings.Contains(got["github.com/h/h"].Found, "hint")},
		{"tag", got["github.com/t/tag"].Module.Version == "v1.2.0"},
		{"excluded carried at the same revision only", len(l.Excluded) == 1 && l.Excluded[0].Root == "github.com/tool/t" && l.Excluded[0].UpstreamRev == revX},
		{"buildtag fix", l.Fix == pins.Fix{Kind: pins.FixBuildTag, Tag: pins.NokmemTag, Requires: "libcontainer/cgroups/fs/kmem_disabled.go"}},
		{"nokmem tag", strings.Join(l.Build.Tags, ",") == "seccomp,nokmem"},
		{"version in -X", l.Build.LDFlagsX[0] == "main.version=1.0.0-rc6+{{.Marker}}"},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s: not as expected; lock %+v", c.name, l)
		}
	}
	var un []string
	for _, u := range unpinned {
		un = append(un, u.Root)
	}
	// d: nothing served; o: the template overrides it and its revision
	// changed; u: excluded by the template at another revision, so resolved (and not served).
	if strings.Join(un, ",") != "github.com/d/d,github.com/o/o,github.com/tool/u" {
		t.Errorf("unpinned %v, want d, o and tool/u", unpinned)
	}
	if _, ok := got["github.com/d/d"]; ok {
		t.Error("d was pinned although nothing is served for it")
	}
	for _, a := range r.asked {
		if strings.Contains(a, "999999999999") {
			t.Errorf("a hint for another commit was used: %s", a)
		}
	}
}

// Regenerating a lock from its own manifest with itself as a known lock
// pins exactly what it pins; a changed revision is caught by Compare.
func TestRegenerateCompare(t *testing.T) {
	tmpl := template()
	tmpl.Vendor, tmpl.Excluded = tmpl.Vendor[:1], tmpl.Excluded[:1]
	src := writeTree(t, map[string]string{
		"Godeps/Godeps.json": `{"Deps": [{"ImportPath": "github.com/a/a/sub", "Rev": "` + revA + `"}, {"ImportPath": "github.com/a/a", "Rev": "` + revA + `"}, {"ImportPath": "github.com/tool/t/cmd", "Rev": "` + revX + `"}]}`,
	})
	r := &fakeResolver{served: map[string]Download{"github.com/opencontainers/runc@v1.0.0-rc5": {Module: tmpl.Source.Module, Dir: src, Time: tmpl.Source.CommitTime}}}
	l, unpinned, err := Generate(context.Background(), r, Request{Project: "runc", Version: "v1.0.0-rc5", Commit: "c5", Template: tmpl, Known: []*pins.Lock{tmpl}})
	if err != nil || len(unpinned) > 0 {
		t.Fatalf("%v %v", err, unpinned)
	}
	if d := Compare(tmpl, l); len(d) > 0 {
		t.Fatalf("regenerated lock differs: %v", d)
	}
	l.Vendor[0].UpstreamRev = revB
	l.Fix.Kind = pins.FixBuildTag
	if d := Compare(tmpl, l); len(d) != 2 || !strings.Contains(d[0], "fix:") || !strings.Contains(d[1], "vendor github.com/a/a") {
		t.Errorf("Compare = %q, want the fix and github.com/a/a named", d)
	}
}

// A version whose upstream commit is not known gets an empty commit and
// the reason; without a reason the generated lock is invalid.
func TestGenerateUnknownCommit(t *testing.T) {
	tmpl := template()
	tmpl.Vendor, tmpl.Excluded = tmpl.Vendor[:1], nil
	src := writeTree(t, map[string]string{
		"Godeps/Godeps.json": `{"Deps": [{"ImportPath": "github.com/a/a", "Rev": "` + revA + `"}]}`,
	})
	r := &fakeResolver{served: map[string]Download{"github.com/opencontainers/runc@v1.0.0-rc5": {Module: tmpl.Source.Module, Dir: src, Time: tmpl.Source.CommitTime}}}
	req := Request{Project: "runc", Version: "v1.0.0-rc5", CommitUnknown: "no public record", Template: tmpl, Known: []*pins.Lock{tmpl}}
	l, unpinned, err := Generate(context.Background(), r, req)
	if err != nil || len(unpinned) > 0 {
		t.Fatalf("%v %v", err, unpinned)
	}
	if l.Source.Commit != "" || l.Source.CommitUnknown != "no public record" {
		t.Errorf("source %+v, want an empty commit and the reason", l.Source)
	}
	if d := Compare(tmpl, l); len(d) != 2 || !strings.Contains(d[1], "commitUnknown") {
		t.Errorf("Compare = %q, want the commit and commitUnknown named", d)
	}
	req.CommitUnknown = ""
	if _, _, err := Generate(context.Background(), r, req); err == nil || !strings.Contains(err.Error(), "commitUnknown") {
		t.Errorf("got %v, want an empty commit without a reason refused", err)
	}
}

func TestGenerateSourceNotServed(t *testing.T) {
	_, _, err := Generate(context.Background(), &fakeResolver{}, Request{Project: "runc", Version: "v9.9.9", Commit: "c", Template: template()})
	var de *DownloadError
	if !errors.As(err, &de) || !strings.Contains(err.Error(), "source github.com/opencontainers/runc@v9.9.9") {
		t.Fatalf("got %v, want the source download named", err)
	}
}

func TestParseHints(t *testing.T) {
	hs, err := ParseHints([]byte("# c\n\nexample.com/a v0.0.0-20180911193056-5684b8af48c1 # from git\n"))
	if err != nil || len(hs) != 1 || hs[0].Note != "from git" {
		t.Fatalf("%+v %v", hs, err)
	}
	hs, err = ParseHints([]byte("example.com/a v1.0.0 " + revA + " # tag\n"))
	if err != nil || len(hs) != 1 || !hs[0].matches("example.com/a", revA) || hs[0].matches("example.com/a", revB) {
		t.Fatalf("tag hint %+v %v", hs, err)
	}
	for _, bad := range []string{"example.com/a v1.0.0\n", "example.com/a v1.0.0 abc\n", "example.com/a v0.0.0-20180911193056-5684b8af48c1 " + revA + "\n"} {
		if _, err := ParseHints([]byte(bad)); err == nil || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("ParseHints(%q) = %v, want line 1 refused", bad, err)
		}
	}
}
