package pins

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// repoPins is the repository's vendor-pins folder, seen from this package.
const repoPins = "../../vendor-pins"

func TestRealLockComplete(t *testing.T) {
	l, err := Load(repoPins, "kubernetes", "v1.12.4")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(l.Vendor), 200; got != want {
		t.Errorf("vendor roots: got %d, want %d", got, want)
	}
	if got, want := len(l.Excluded), 2; got != want {
		t.Errorf("excluded roots: got %d, want %d", got, want)
	}
	// Godeps.json names 202 roots: every one is either vendored or excluded.
	roots := map[string]bool{}
	for _, v := range l.Vendor {
		roots[v.Root] = true
		if v.UpstreamRev == "" || v.Found == "" {
			t.Errorf("vendor %s: upstreamRev and found are required", v.Root)
		}
	}
	for _, e := range l.Excluded {
		if roots[e.Root] {
			t.Errorf("%s is both vendored and excluded", e.Root)
		}
		roots[e.Root] = true
	}
	if len(roots) != 202 {
		t.Errorf("vendored+excluded roots: got %d, want the 202 of Godeps.json", len(roots))
	}
	checks := []struct {
		name string
		ok   bool
	}{
		{"source is k8s.io/kubernetes@v1.12.4", l.Source.String() == "k8s.io/kubernetes@v1.12.4"},
		{"source commit", l.Source.Commit == "f49fa022dbe63faafd0da106ef7e05a29721d3f1"},
		{"import path", l.Source.ImportPath == "k8s.io/kubernetes"},
		{"toolchain", l.Toolchain.String() == "golang.org/toolchain@v0.0.1-go1.26.11.linux-amd64"},
		{"staging links", l.Staging != nil && l.Staging.Dir == "staging/src" && l.Staging.Prefix == "k8s.io"},
		{"kubelet package", len(l.Build.Packages) == 1 && l.Build.Packages[0].Output == "kubelet"},
		{"cgo and static", l.Build.CGO && l.Build.Static},
		{"marker in gitVersion", strings.Contains(strings.Join(l.Build.LDFlagsX, " "), "gitVersion={{.Version}}+{{.Marker}}")},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s: not as expected", c.name)
		}
	}
	var reflect2 *VendorEntry
	for i := range l.Vendor {
		if l.Vendor[i].Root == "github.com/modern-go/reflect2" {
			reflect2 = &l.Vendor[i]
		}
	}
	if reflect2 == nil || reflect2.Override == nil || reflect2.Module.Version != "v1.0.2" ||
		reflect2.Module.H1 != "h1:xBagoLtFs94CBntxluKeaWgTMpvLxC4ur3nMaC9Gz0M=" {
		t.Errorf("reflect2 override missing or wrong: %+v", reflect2)
	}
	if got := len(l.Modules()); got != 202 {
		t.Errorf("Modules(): got %d, want 202 (source, toolchain, 200 vendor)", got)
	}
}

func TestUnknownVersion(t *testing.T) {
	tests := []struct {
		project, version string
		want             []string
	}{
		{"kubernetes", "v9.9.9", []string{"kubernetes v9.9.9", "vendor-pins/kubernetes/v9.9.9.yaml", "known: v1.12.4"}},
		{"nosuch", "v1.0.0", []string{"nosuch v1.0.0", "known: none"}},
	}
	for _, tc := range tests {
		_, err := Load(repoPins, tc.project, tc.version)
		if !errors.Is(err, ErrUnknownVersion) {
			t.Fatalf("%s %s: got %v, want ErrUnknownVersion", tc.project, tc.version, err)
		}
		for _, want := range tc.want {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %q", err, want)
			}
		}
	}
}

const goodLock = `project: demo
version: v1.0.0
source:
  path: example.com/demo
  version: v1.0.0
  h1: "h1:AAAA"
  commit: abc
  commitTime: "2020-01-01T00:00:00Z"
  importPath: example.com/demo
toolchain:
  path: golang.org/toolchain
  version: v0.0.1-go1.26.11.linux-amd64
  h1: "h1:BBBB"
fix:
  kind: patch
build:
  packages:
    - package: cmd/demo
      output: demo
vendor:
  - root: example.com/dep
    module:
      path: example.com/dep
      version: v1.0.0
      h1: "h1:CCCC"
`

func TestLoadBadInput(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(string) string
		wantErr string // empty: loads fine
	}{
		{"good", func(s string) string { return s }, ""},
		{"missing vendor h1", func(s string) string { return strings.Replace(s, `      h1: "h1:CCCC"`+"\n", "", 1) }, "vendor example.com/dep example.com/dep@v1.0.0: missing or malformed h1"},
		{"malformed toolchain h1", func(s string) string { return strings.Replace(s, "h1:BBBB", "sha256:BBBB", 1) }, "toolchain golang.org/toolchain"},
		{"non-canonical vendor version", func(s string) string {
			return strings.Replace(s, "      version: v1.0.0\n", "      version: v1.0\n", 1)
		}, "vendor example.com/dep example.com/dep@v1.0: version is not canonical (the proxy serves v1.0.0)"},
		{"invalid module path", func(s string) string { return strings.Replace(s, "path: example.com/dep", "path: Example..com/dep", 1) }, "vendor example.com/dep: malformed module path"},
		{"unknown field", func(s string) string { return s + "extra: 1\n" }, "unknown field"},
		{"duplicate root", func(s string) string {
			return s + "  - root: example.com/dep\n    module: {path: example.com/dep, version: v1.0.0, h1: \"h1:DDDD\"}\n"
		}, "listed twice"},
		{"nested vendor root", func(s string) string {
			return s + "  - root: example.com/dep/sub\n    module: {path: example.com/sub, version: v1.0.0, h1: \"h1:DDDD\"}\n"
		}, "vendor example.com/dep/sub: inside vendor root example.com/dep"},
		{"nested below a sibling with a common prefix", func(s string) string {
			return s + "  - root: example.com/dep-x\n    module: {path: example.com/x, version: v1.0.0, h1: \"h1:DDDD\"}\n" +
				"  - root: example.com/dep/a/b\n    module: {path: example.com/b, version: v1.0.0, h1: \"h1:DDDD\"}\n"
		}, "vendor example.com/dep/a/b: inside vendor root example.com/dep;"},
		{"sibling with a common prefix is fine", func(s string) string {
			return s + "  - root: example.com/dep2\n    module: {path: example.com/dep2, version: v1.0.0, h1: \"h1:DDDD\"}\n"
		}, ""},
		{"override without dropWhen", func(s string) string { return s + "    override: {fixes: a bug}\n" }, "needs fixes and dropWhen"},
		{"staging without prefix", func(s string) string { return s + "staging: {dir: staging/src}\n" }, "staging: dir and prefix"},
		{"no commit", func(s string) string { return strings.Replace(s, "  commit: abc\n", "", 1) }, "source: commit is required (or commitUnknown"},
		{"empty commit without a reason", func(s string) string { return strings.Replace(s, "commit: abc", `commit: ""`, 1) }, "source: commit is required (or commitUnknown"},
		{"unknown commit with a reason", func(s string) string {
			return strings.Replace(s, "commit: abc", "commit: \"\"\n  commitUnknown: the proxy does not record it", 1)
		}, ""},
		{"commit and commitUnknown both", func(s string) string {
			return strings.Replace(s, "commit: abc", "commit: abc\n  commitUnknown: the proxy does not record it", 1)
		}, "source: commit abc is set, so commitUnknown must be empty"},
		{"no fix", func(s string) string { return strings.Replace(s, "fix:\n  kind: patch\n", "", 1) }, "fix: kind is required (one of patch, buildtag, none)"},
		{"unknown fix kind", func(s string) string { return strings.Replace(s, "kind: patch", "kind: sed", 1) }, `fix: unknown kind "sed"`},
		{"patch with a tag", func(s string) string { return strings.Replace(s, "kind: patch", "kind: patch\n  tag: nokmem", 1) }, "fix: kind patch takes no tag"},
		{"good buildtag", buildtag(fsKmem, "[nokmem]"), ""},
		{"buildtag without the tag in build.tags", buildtag(fsKmem, "[seccomp]"), "fix: tag nokmem is not in build.tags [seccomp]"},
		{"buildtag naming another tag", func(s string) string {
			return strings.Replace(buildtag(fsKmem, "[nokmem]")(s), "tag: nokmem", "tag: kmem_off", 1)
		}, `fix: kind buildtag needs tag: nokmem, got "kmem_off"`},
		{"buildtag without requires", buildtag("", "[nokmem]"), "needs requires: the relative path of libcontainer/cgroups/fs/kmem_disabled.go"},
		{"buildtag requiring another file", buildtag("libcontainer/cgroups/fs/kmem.go", "[nokmem]"), "needs requires"},
		{"buildtag requiring a path outside the tree", buildtag("../fs/kmem_disabled.go", "[nokmem]"), "needs requires"},
		{"good none", none(cgroupsMemory, "[seccomp]"), ""},
		{"none with the nokmem tag", none(cgroupsMemory, "[seccomp, nokmem]"), "fix: kind none takes no tag, and build.tags [seccomp nokmem] must not have nokmem"},
		{"none naming a tag", func(s string) string {
			return strings.Replace(none(cgroupsMemory, "[seccomp]")(s), "kind: none", "kind: none\n  tag: nokmem", 1)
		}, "fix: kind none takes no tag"},
		{"none without requires", none("", "[seccomp]"), "fix: kind none needs requires: the relative path of the cgroupfs driver's memory.go"},
		{"none requiring another file", none("vendor/github.com/opencontainers/cgroups/fs/cpu.go", "[seccomp]"), "kind none needs requires"},
		{"none requiring an absolute path", none("/fs/memory.go", "[seccomp]"), "kind none needs requires"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.MkdirAll(filepath.Join(dir, "demo"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(Path(dir, "demo", "v1.0.0"), []byte(tc.edit(goodLock)), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Load(dir, "demo", "v1.0.0")
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("got error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestDigest(t *testing.T) {
	a, err := Load(repoPins, "kubernetes", "v1.12.4")
	if err != nil {
		t.Fatal(err)
	}
	b, err := Load(repoPins, "kubernetes", "v1.12.4")
	if err != nil {
		t.Fatal(err)
	}
	if a.Digest() != b.Digest() || len(a.Digest()) != 64 {
		t.Fatalf("digest of the same lock differs or is malformed: %s %s", a.Digest(), b.Digest())
	}
	b.Vendor[10].Module.H1 = "h1:changed"
	if a.Digest() == b.Digest() {
		t.Error("digest did not change with a vendor h1")
	}
}

// fsKmem is where runc's own tree has kmem_disabled.go.
const fsKmem = "libcontainer/cgroups/fs/kmem_disabled.go"

// cgroupsMemory is the cgroupfs driver's memory.go in a runc 1.3+ tree.
const cgroupsMemory = "vendor/github.com/opencontainers/cgroups/fs/memory.go"

// none turns goodLock into a none lock requiring file, with build tags tags.
func none(file, tags string) func(string) string {
	return func(s string) string {
		s = strings.Replace(s, "kind: patch", "kind: none\n  requires: \""+file+"\"", 1)
		return strings.Replace(s, "      output: demo\n", "      output: demo\n  tags: "+tags+"\n", 1)
	}
}

// buildtag turns goodLock into a buildtag lock requiring file, with build tags tags.
func buildtag(file, tags string) func(string) string {
	return func(s string) string {
		s = strings.Replace(s, "kind: patch", "kind: buildtag\n  tag: nokmem\n  requires: \""+file+"\"", 1)
		return strings.Replace(s, "      output: demo\n", "      output: demo\n  tags: "+tags+"\n", 1)
	}
}
