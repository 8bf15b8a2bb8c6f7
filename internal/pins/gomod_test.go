package pins

import (
	"strings"
	"testing"
)

func goModLock() *Lock {
	return &Lock{
		Project: "runc", Version: "v1.0.0-rc92",
		Source:    Source{Module: Module{Path: "github.com/opencontainers/runc", Version: "v1.0.0-rc92", H1: "h1:s="}, Commit: "c", CommitTime: "2020-08-05T16:26:49Z", ImportPath: "github.com/opencontainers/runc", Kind: SourceGoMod},
		Toolchain: Module{Path: "golang.org/toolchain", Version: "v0.0.1-go1.26.11.linux-amd64", H1: "h1:t="},
		Fix:       Fix{Kind: FixBuildTag, Tag: NokmemTag, Requires: "libcontainer/cgroups/fs/kmem_disabled.go"},
		Build:     Build{Packages: []BuildPackage{{Package: ".", Output: "runc"}}, Tags: []string{NokmemTag}},
		GoMod: &GoMod{
			Load: []string{"."},
			Replace: []Replace{
				{Path: "vbom.ml/util", Kind: ReplaceMirror, With: &ModVersion{Path: "github.com/fvbommel/util", Version: "v0.0.0-20160121211510-db5cfe13f5cc"}, Reason: "gone"},
				{Path: "k8s.io/sample-controller", Kind: ReplaceStub, Reason: "not served"},
			},
			Modules: []GoModule{
				{Path: "github.com/fvbommel/util", Version: "v0.0.0-20160121211510-db5cfe13f5cc", GoModH1: "h1:m="},
				{Path: "golang.org/x/sys", Version: "v0.1.0", H1: "h1:z=", GoModH1: "h1:zm="},
			},
		},
	}
}

func TestGoModValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(l *Lock)
		want string // "" valid
	}{
		{"good", func(l *Lock) {}, ""},
		{"no graph", func(l *Lock) { l.GoMod = nil }, "source.kind gomod needs gomod:"},
		{"graph on a GOPATH lock", func(l *Lock) { l.Source.Kind = "" }, "gomod: only for source.kind gomod"},
		{"unknown kind", func(l *Lock) { l.Source.Kind = "glide" }, `source: unknown kind "glide"`},
		{"vendor roots too", func(l *Lock) {
			l.Vendor = []VendorEntry{{Root: "a.b/c", Module: Module{Path: "a.b/c", Version: "v1.0.0", H1: "h1:x="}}}
		}, "vendor, excluded and staging are for GOPATH trees"},
		{"replacement not pinned", func(l *Lock) { l.GoMod.Modules = l.GoMod.Modules[1:] }, "the replacement github.com/fvbommel/util@v0.0.0-20160121211510-db5cfe13f5cc is not in gomod.modules"},
		{"stub with a module", func(l *Lock) { l.GoMod.Replace[1].With = &ModVersion{Path: "x.y/z", Version: "v1.0.0"} }, "a stub replaces with a directory"},
		{"override without dropWhen", func(l *Lock) { l.GoMod.Replace[0].Kind = ReplaceOverride }, "an override needs dropWhen"},
		{"replace without reason", func(l *Lock) { l.GoMod.Replace[1].Reason = "" }, "gomod replace k8s.io/sample-controller: a reason is required"},
		{"unknown replace kind", func(l *Lock) { l.GoMod.Replace[1].Kind = "fork" }, `kind "fork" is not`},
		{"no go.mod hash", func(l *Lock) { l.GoMod.Modules[1].GoModH1 = "" }, "golang.org/x/sys@v0.1.0: missing or malformed goModH1"},
		{"module twice", func(l *Lock) { l.GoMod.Modules = append(l.GoMod.Modules, l.GoMod.Modules[1]) }, "golang.org/x/sys@v0.1.0: listed twice"},
		{"nothing loaded", func(l *Lock) { l.GoMod.Load = nil }, "gomod: load names no packages"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := goModLock()
			tc.edit(l)
			err := l.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestGoModSumAndModules(t *testing.T) {
	l := goModLock()
	want := "github.com/fvbommel/util v0.0.0-20160121211510-db5cfe13f5cc/go.mod h1:m=\ngolang.org/x/sys v0.1.0 h1:z=\ngolang.org/x/sys v0.1.0/go.mod h1:zm=\n"
	if got := string(l.GoMod.GoSum()); got != want {
		t.Errorf("GoSum =\n%s\nwant\n%s", got, want)
	}
	// Zips: source, toolchain and the one module with a zip hash.
	if ms := l.Modules(); len(ms) != 3 || ms[2].String() != "golang.org/x/sys@v0.1.0" || ms[2].H1 != "h1:z=" {
		t.Errorf("Modules = %v", ms)
	}
	if ms := l.GoMod.GoModFiles(); len(ms) != 2 || ms[0].H1 != "h1:m=" {
		t.Errorf("GoModFiles = %v", ms)
	}
}
