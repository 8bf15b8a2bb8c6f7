package provenance

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/nokmem/nokmem/internal/pins"
	"github.com/nokmem/nokmem/internal/release/inputs"
	"github.com/nokmem/nokmem/internal/release/inputs/inputstest"
)

// TestStatementNamesEveryInput writes and reads back a statement and checks
// that every module (dirHash of its h1), patch, system package and build
// flag is named, and that the subjects are the artifacts.
func TestStatementNamesEveryInput(t *testing.T) {
	in := inputstest.Runc()
	artifacts := []inputs.Artifact{{Name: "runc", SHA256: "ab000000000000000000000000000000000000000000000000000000000000cd"}}
	st, err := Statement(in, artifacts)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), FileName)
	if err := Write(path, st); err != nil {
		t.Fatal(err)
	}
	back, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if back.GetPredicateType() != PredicateType {
		t.Errorf("predicate type %q", back.GetPredicateType())
	}
	if s := back.GetSubject(); len(s) != 1 || s[0].GetName() != "runc" || s[0].GetDigest()["sha256"] != artifacts[0].SHA256 {
		t.Errorf("subjects %v, want runc with its sha256", s)
	}
	pred, err := Predicate(back)
	if err != nil {
		t.Fatal(err)
	}
	deps := map[string]map[string]string{}
	for _, d := range pred.GetBuildDefinition().GetResolvedDependencies() {
		deps[d.GetName()] = d.GetDigest()
	}
	modules := []pins.Module{in.Source.Module, in.Toolchain}
	for _, v := range in.Vendor {
		modules = append(modules, v.Module)
	}
	for _, m := range modules {
		want, err := inputs.DirHash(m.H1)
		if err != nil {
			t.Fatal(err)
		}
		if got := deps[m.String()]["dirHash"]; got != want {
			t.Errorf("dependency %s: dirHash %q, want %q", m, got, want)
		}
	}
	for _, p := range in.Patches {
		if got := deps["patches/runc/v1.0.0-rc5/"+p.Name]["sha256"]; got != p.SHA256 {
			t.Errorf("patch %s: sha256 %q, want %q", p.Name, got, p.SHA256)
		}
	}
	for _, sp := range in.SystemPackages {
		if _, ok := deps[sp.Name+"="+sp.Version]; !ok {
			t.Errorf("system package %s=%s not among the dependencies", sp.Name, sp.Version)
		}
	}
	ext := pred.GetBuildDefinition().GetExternalParameters().AsMap()
	for _, key := range []string{"tags", "ldflags"} {
		var got []string
		for _, v := range ext[key].([]any) {
			got = append(got, v.(string))
		}
		want := in.Build.Tags
		if key == "ldflags" {
			want = in.Build.LDFlags
		}
		if !slices.Equal(got, want) {
			t.Errorf("external parameter %s = %v, want %v", key, got, want)
		}
	}
	if ext["cgo"] != true || ext["static"] != true {
		t.Errorf("cgo/static not recorded: %v", ext)
	}
}

func TestStatementRejectsBadDigest(t *testing.T) {
	in := inputstest.Runc()
	if _, err := Statement(in, []inputs.Artifact{{Name: "runc", SHA256: "not-hex"}}); err == nil {
		t.Fatal("Statement accepted a subject digest that is not hex")
	}
	in.Toolchain.H1 = "h1:"
	if _, err := Statement(in, []inputs.Artifact{{Name: "runc", SHA256: "ab000000000000000000000000000000000000000000000000000000000000cd"}}); err == nil {
		t.Fatal("Statement accepted a toolchain without a usable h1")
	}
}

// TestRealLocksNamed builds statements from the committed lock files and
// patch series and checks that every module and patch is a resolved dependency.
func TestRealLocksNamed(t *testing.T) {
	for _, pv := range []struct{ project, version string }{{"runc", "v1.0.0-rc5"}, {"kubernetes", "v1.12.4"}} {
		t.Run(pv.project, func(t *testing.T) {
			l, err := pins.Load("../../../vendor-pins", pv.project, pv.version)
			if err != nil {
				t.Fatal(err)
			}
			in, err := inputs.FromLock(l, filepath.Join("../../../patches", pv.project, pv.version))
			if err != nil {
				t.Fatal(err)
			}
			st, err := Statement(in, []inputs.Artifact{{Name: "bin", SHA256: "ab000000000000000000000000000000000000000000000000000000000000cd"}})
			if err != nil {
				t.Fatal(err)
			}
			pred, err := Predicate(st)
			if err != nil {
				t.Fatal(err)
			}
			deps := map[string]string{}
			for _, d := range pred.GetBuildDefinition().GetResolvedDependencies() {
				for alg, v := range d.GetDigest() {
					deps[d.GetName()+" "+alg] = v
				}
			}
			for _, m := range l.Modules() {
				want, err := inputs.DirHash(m.H1)
				if err != nil {
					t.Fatal(err)
				}
				if deps[m.String()+" dirHash"] != want {
					t.Errorf("module %s missing or with the wrong dirHash", m)
				}
			}
			if len(in.Patches) == 0 {
				t.Fatal("no patches found")
			}
			for _, p := range in.Patches {
				if deps["patches/"+pv.project+"/"+pv.version+"/"+p.Name+" sha256"] != p.SHA256 {
					t.Errorf("patch %s missing or with the wrong sha256", p.Name)
				}
			}
		})
	}
}
