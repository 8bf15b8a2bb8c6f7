package lockgen

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nokmem/nokmem/internal/pins"
)

// fakeLoader returns a fixed go.sum and records the go.mod it was given.
type fakeLoader struct {
	*fakeResolver
	sum   string
	gomod string
	pkgs  []string
}

func (f *fakeLoader) LoadGraph(_ context.Context, dir string, tags, pkgs []string) ([]byte, error) {
	data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	f.gomod, f.pkgs = string(data), pkgs
	return []byte(f.sum), err
}

const fakeGoSum = `github.com/fvbommel/util v0.0.0-20160121211510-db5cfe13f5cc/go.mod h1:fvmod=
github.com/o/o v1.0.1/go.mod h1:o1mod=
github.com/o/o v1.0.2 h1:o=
github.com/o/o v1.0.2/go.mod h1:o2mod=
github.com/opencontainers/runc v1.0.0-rc92 h1:runc=
github.com/opencontainers/runc v1.0.0-rc92/go.mod h1:runcmod=
k8s.io/api v0.20.15 h1:api=
k8s.io/api v0.20.15/go.mod h1:apimod=
`

// A go.mod-era kubelet: staging replaced by the published module, an
// unserved staging module stubbed, a dead host mirrored, the template's
// override carried, the -X list read from version.sh, the graph taken from
// the loader's go.sum, and regenerating compares equal.
func TestGenerateGoMod(t *testing.T) {
	tmpl := template()
	tmpl.Project, tmpl.Version = "kubernetes", "v1.12.4"
	tmpl.Source = pins.Source{Module: pins.Module{Path: "k8s.io/kubernetes", Version: "v1.12.4", H1: "h1:k="}, Commit: "c", CommitTime: "2018-01-01T00:00:00Z", ImportPath: "k8s.io/kubernetes"}
	tmpl.Build.Packages = []pins.BuildPackage{{Package: "cmd/kubelet", Output: "kubelet"}}
	tmpl.Build.Tags = nil
	src := writeTree(t, map[string]string{
		"go.mod": `module k8s.io/kubernetes

go 1.15

require (
	github.com/o/o v1.0.1
	github.com/opencontainers/runc v1.0.0-rc92
	k8s.io/api v0.0.0
	k8s.io/sample-controller v0.0.0
	vbom.ml/util v0.0.0-20160121211510-db5cfe13f5cc
)

replace (
	k8s.io/api => ./staging/src/k8s.io/api
	k8s.io/kubectl => ./staging/src/k8s.io/kubectl
	k8s.io/sample-controller => ./staging/src/k8s.io/sample-controller
)
`,
		"go.sum":              "k8s.io/api v0.20.15/go.mod h1:apimod=\n",
		"cmd/kubelet/main.go": "package main\n",
		"hack/lib/version.sh": "    ldflags+=(\n      \"-X '${KUBE_GO_PACKAGE}/vendor/k8s.io/client-go/pkg/version.${key}=${val}'\"\n      \"-X '${KUBE_GO_PACKAGE}/pkg/version.${key}=${val}'\"\n",
	})
	runcDir := writeTree(t, map[string]string{"libcontainer/cgroups/fs/kmem_disabled.go": "package fs\n"})
	r := &fakeLoader{fakeResolver: &fakeResolver{served: map[string]Download{
		"k8s.io/kubernetes@v1.20.15":                 {Module: pins.Module{Path: "k8s.io/kubernetes", Version: "v1.20.15", H1: "h1:k20="}, Dir: src, Time: "2022-01-19T17:22:08Z"},
		"k8s.io/api@v0.20.15":                        mod("k8s.io/api", "v0.20.15"),
		"github.com/opencontainers/runc@v1.0.0-rc92": {Module: pins.Module{Path: "github.com/opencontainers/runc", Version: "v1.0.0-rc92", H1: "h1:runc="}, Dir: runcDir},
	}}, sum: fakeGoSum}
	req := Request{Project: "kubernetes", Version: "v1.20.15", Commit: "8f1e", Template: tmpl}
	l, unpinned, err := Generate(context.Background(), r, req)
	if err != nil || len(unpinned) > 0 {
		t.Fatalf("Generate: %v, unpinned %v", err, unpinned)
	}
	if l.Source.Kind != pins.SourceGoMod || l.Vendor != nil || l.Staging != nil {
		t.Errorf("source kind %q, vendor %v, staging %v: want a gomod lock", l.Source.Kind, l.Vendor, l.Staging)
	}
	kinds := map[string]string{}
	for _, rep := range l.GoMod.Replace {
		kinds[rep.Path] = rep.Kind
		if rep.With != nil {
			kinds[rep.Path] += " " + rep.With.String()
		}
	}
	want := map[string]string{
		"k8s.io/api":               "staging k8s.io/api@v0.20.15",
		"k8s.io/sample-controller": "stub",
		"vbom.ml/util":             "mirror github.com/fvbommel/util@v0.0.0-20160121211510-db5cfe13f5cc",
		"github.com/o/o":           "override github.com/o/o@v1.0.2",
	}
	for p, w := range want {
		if kinds[p] != w {
			t.Errorf("replace %s = %q, want %q", p, kinds[p], w)
		}
	}
	if _, ok := kinds["k8s.io/kubectl"]; ok {
		t.Errorf("k8s.io/kubectl is not required upstream, yet replaced: %v", kinds)
	}
	for _, w := range []string{"k8s.io/api => k8s.io/api v0.20.15", "k8s.io/sample-controller => ./.nokmem-stubs/k8s.io/sample-controller", "vbom.ml/util => github.com/fvbommel/util", "github.com/o/o => github.com/o/o v1.0.2"} {
		if !strings.Contains(r.gomod, w) {
			t.Errorf("the loaded go.mod lacks %q:\n%s", w, r.gomod)
		}
	}
	if !slices.Equal(r.pkgs[:1], []string{"./cmd/kubelet"}) || !slices.Contains(r.pkgs, "github.com/opencontainers/runc/libcontainer/cgroups/fs") {
		t.Errorf("loaded %v, want ./cmd/kubelet and the proofs' packages", r.pkgs)
	}
	if got := len(l.GoMod.Modules); got != 5 {
		t.Errorf("%d modules, want the 5 of the go.sum", got)
	}
	if m := l.GoMod.Module("github.com/o/o", "v1.0.1"); m == nil || m.H1 != "" || m.GoModH1 != "h1:o1mod=" {
		t.Errorf("o v1.0.1 = %+v, want only its go.mod hash", m)
	}
	if l.Fix.Kind != pins.FixBuildTag || l.Fix.Requires != "vendor/github.com/opencontainers/runc/libcontainer/cgroups/fs/kmem_disabled.go" || !slices.Contains(l.Build.Tags, pins.NokmemTag) {
		t.Errorf("fix %+v tags %v, want buildtag from the runc module", l.Fix, l.Build.Tags)
	}
	x := strings.Join(l.Build.LDFlagsX, " ")
	for _, w := range []string{"k8s.io/client-go/pkg/version.gitVersion={{.Version}}+{{.Marker}}", "k8s.io/kubernetes/pkg/version.gitMinor=20", "k8s.io/kubernetes/pkg/version.gitCommit={{.Commit}}"} {
		if !strings.Contains(x, w) {
			t.Errorf("ldflagsX lack %q: %v", w, l.Build.LDFlagsX)
		}
	}
	if strings.Contains(x, "/vendor/") {
		t.Errorf("ldflagsX keep GOPATH vendor paths: %v", l.Build.LDFlagsX)
	}

	again, _, err := Generate(context.Background(), r, req)
	if err != nil {
		t.Fatal(err)
	}
	if d := Compare(l, again); len(d) > 0 {
		t.Fatalf("regenerated lock differs: %v", d)
	}
	again.GoMod.Modules[0].GoModH1 = "h1:other="
	again.GoMod.Replace = again.GoMod.Replace[1:]
	if d := Compare(l, again); len(d) != 2 {
		t.Errorf("Compare = %q, want the dropped replace and the changed hash", d)
	}

	// A go.sum hash that differs from upstream's go.sum is refused.
	r.sum = strings.Replace(fakeGoSum, "h1:apimod=", "h1:evil=", 1)
	if _, _, err := Generate(context.Background(), r, req); err == nil || !strings.Contains(err.Error(), "k8s.io/api@v0.20.15 go.mod h1:evil=") {
		t.Errorf("Generate with a hash that differs from upstream's go.sum: %v", err)
	}
	// No commit: the lock says why.
	req.Commit, req.CommitUnknown = "", "no public record"
	r.sum = fakeGoSum
	if l, _, err = Generate(context.Background(), r, req); err != nil {
		t.Fatalf("Generate without a commit: %v", err)
	}
	if l.Source.Commit != "" || l.Source.CommitUnknown != "no public record" {
		t.Errorf("Generate without a commit: source %+v, want an empty commit and the reason", l.Source)
	}
}

// A runc 1.3+ tree (drivers in github.com/opencontainers/cgroups, whose
// MemoryGroup.Apply only joins): fix none naming the module's memory.go,
// upstream's Makefile tags, the marker as main.extraVersion, and the
// driver package loaded for the proofs. The same tree with an Apply that
// activates kmem gets a patch fix.
func TestGenerateGoModRuncNoFix(t *testing.T) {
	src := writeTree(t, map[string]string{
		"go.mod":   "module github.com/opencontainers/runc\n\ngo 1.24.0\n\nrequire github.com/opencontainers/cgroups v0.1.0\n",
		"go.sum":   "",
		"main.go":  "package main\n\nvar version string\n\nvar extraVersion = \"\"\n",
		"Makefile": "GO ?= go\nBUILDTAGS := seccomp urfave_cli_no_docs\nBUILDTAGS += $(EXTRA_BUILDTAGS)\n",
	})
	applyJoins := "package fs\n\ntype MemoryGroup struct{}\n\nfunc (s *MemoryGroup) Apply(path string, pid int) error { return apply(path, pid) }\n"
	cgroups := writeTree(t, map[string]string{"fs/memory.go": applyJoins})
	sum := "github.com/opencontainers/cgroups v0.1.0 h1:cg=\ngithub.com/opencontainers/cgroups v0.1.0/go.mod h1:cgmod=\n"
	r := &fakeLoader{fakeResolver: &fakeResolver{served: map[string]Download{
		"github.com/opencontainers/runc@v1.4.4":    {Module: pins.Module{Path: "github.com/opencontainers/runc", Version: "v1.4.4", H1: "h1:r44="}, Dir: src, Time: "2026-11-12T07:34:35Z"},
		"github.com/opencontainers/cgroups@v0.1.0": {Module: pins.Module{Path: "github.com/opencontainers/cgroups", Version: "v0.1.0", H1: "h1:cg="}, Dir: cgroups},
	}}, sum: sum}
	tmpl := template()
	tmpl.Build.Tags = []string{"seccomp", "apparmor", "selinux", "static_build"}
	l, unpinned, err := Generate(context.Background(), r, Request{Project: "runc", Version: "v1.4.4", CommitUnknown: "not recorded", Template: tmpl})
	if err != nil || len(unpinned) > 0 {
		t.Fatalf("Generate: %v, unpinned %v", err, unpinned)
	}
	if want := (pins.Fix{Kind: pins.FixNone, Requires: "vendor/github.com/opencontainers/cgroups/fs/memory.go"}); l.Fix != want {
		t.Errorf("fix %+v, want %+v", l.Fix, want)
	}
	if want := []string{"seccomp", "urfave_cli_no_docs"}; !slices.Equal(l.Build.Tags, want) {
		t.Errorf("tags %v, want upstream's %v", l.Build.Tags, want)
	}
	if want := []string{"main.extraVersion=+{{.Marker}}"}; !slices.Equal(l.Build.LDFlagsX, want) {
		t.Errorf("ldflagsX %v, want %v", l.Build.LDFlagsX, want)
	}
	if want := []string{".", "github.com/opencontainers/cgroups/fs"}; !slices.Equal(r.pkgs, want) {
		t.Errorf("loaded %v, want %v", r.pkgs, want)
	}

	// The same tree whose driver activates kmem is not "none".
	if err := os.WriteFile(filepath.Join(cgroups, "fs", "memory.go"), []byte(applyKmem), 0o644); err != nil {
		t.Fatal(err)
	}
	l, _, err = Generate(context.Background(), r, Request{Project: "runc", Version: "v1.4.4", CommitUnknown: "not recorded", Template: tmpl})
	if err != nil {
		t.Fatal(err)
	}
	if l.Fix.Kind != pins.FixPatch {
		t.Errorf("fix %+v for a driver whose Apply activates kmem, want patch", l.Fix)
	}
}
