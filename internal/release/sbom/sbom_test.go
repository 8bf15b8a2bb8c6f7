package sbom

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/spdx/tools-golang/spdx/v2/common"
	spdx "github.com/spdx/tools-golang/spdx/v2/v2_3"

	"github.com/nokmem/nokmem/internal/pins"
	"github.com/nokmem/nokmem/internal/release/inputs"
	"github.com/nokmem/nokmem/internal/release/inputs/inputstest"
)

// TestWrittenSBOMListsEveryInput writes the document, parses it back with
// the SPDX library and looks up every module, patch and package.
func TestWrittenSBOMListsEveryInput(t *testing.T) {
	checkSBOM(t, inputstest.Runc())
}

// TestRealLocksListed does the same for the committed lock files and patch series.
func TestRealLocksListed(t *testing.T) {
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
			if len(in.Patches) == 0 {
				t.Fatalf("no patches found for %s %s", pv.project, pv.version)
			}
			checkSBOM(t, in)
		})
	}
}

func checkSBOM(t *testing.T, in *inputs.Inputs) {
	t.Helper()
	artifacts := []inputs.Artifact{{Name: "runc", SHA256: "ab00000000000000000000000000000000000000000000000000000000000000"}}
	doc, err := Document(in, artifacts)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), FileName)
	if err := Write(path, doc); err != nil {
		t.Fatal(err)
	}
	back, err := Read(path)
	if err != nil {
		t.Fatalf("SPDX library cannot read the SBOM back: %v", err)
	}
	if back.SPDXVersion != "SPDX-2.3" {
		t.Errorf("SPDX version %q", back.SPDXVersion)
	}
	byName := map[string]*spdx.Package{}
	for _, p := range back.Packages {
		byName[p.PackageName] = p
	}

	modules := []pins.Module{in.Source.Module, in.Toolchain}
	for _, v := range in.Vendor {
		modules = append(modules, v.Module)
	}
	for _, m := range modules {
		t.Run(m.String(), func(t *testing.T) {
			p := byName[m.Path]
			if p == nil {
				t.Fatalf("module %s missing from the SBOM", m)
			}
			if p.PackageVersion != m.Version {
				t.Errorf("version %q, want %q", p.PackageVersion, m.Version)
			}
			if p.PackageSourceInfo != "go.sum "+m.H1 {
				t.Errorf("source info %q does not carry h1 %s", p.PackageSourceInfo, m.H1)
			}
			hexSum, err := inputs.DirHash(m.H1)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(p.PackageChecksums, common.Checksum{Algorithm: common.SHA256, Value: hexSum}) {
				t.Errorf("checksums %v lack the h1 as SHA256 %s", p.PackageChecksums, hexSum)
			}
			wantPURL := "pkg:golang/" + m.Path + "@" + m.Version
			if !hasRef(p, wantPURL) {
				t.Errorf("no purl %s", wantPURL)
			}
		})
	}
	for _, patch := range in.Patches {
		if p := byName[patch.Name]; p == nil || p.PackageChecksums[0].Value != patch.SHA256 {
			t.Errorf("patch %s not listed with its sha256: %+v", patch.Name, p)
		}
	}
	for _, sp := range in.SystemPackages {
		if p := byName[sp.Name]; p == nil || p.PackageVersion != sp.Version || !hasRef(p, inputs.DebPURL(sp)) {
			t.Errorf("system package %s not listed with version and purl: %+v", sp.Name, p)
		}
	}
	if p := byName["runc"]; p == nil || p.PackageChecksums[0].Value != artifacts[0].SHA256 {
		t.Errorf("artifact not listed with its sha256: %+v", p)
	}
}

func hasRef(p *spdx.Package, purl string) bool {
	for _, r := range p.PackageExternalReferences {
		if r.RefType == common.TypePackageManagerPURL && r.Locator == purl {
			return true
		}
	}
	return false
}

func TestDocumentRejectsBadInputs(t *testing.T) {
	tests := []struct {
		name   string
		change func(*inputs.Inputs)
	}{
		{"bad h1", func(in *inputs.Inputs) { in.Vendor[0].Module.H1 = "h1:short" }},
		{"bad commit time", func(in *inputs.Inputs) { in.Source.CommitTime = "yesterday" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := inputstest.Runc()
			tt.change(in)
			if _, err := Document(in, []inputs.Artifact{{Name: "runc", SHA256: "00"}}); err == nil {
				t.Fatal("Document accepted bad inputs")
			}
		})
	}
}
