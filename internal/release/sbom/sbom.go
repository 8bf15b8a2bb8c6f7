// Package sbom writes an SPDX 2.3 JSON document for one artifact set: the
// built files, the source module, every vendored module (version, h1 and
// purl), the Go toolchain, the patches and, for cgo builds, the Debian
// packages of the C toolchain and libraries.
package sbom

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"time"

	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx/v2/common"
	spdx "github.com/spdx/tools-golang/spdx/v2/v2_3"

	"github.com/nokmem/nokmem/internal/pins"
	"github.com/nokmem/nokmem/internal/release/inputs"
)

// FileName is the SBOM's name in a release directory.
const FileName = "sbom.spdx.json"

// Namespace prefixes every document namespace.
const Namespace = "https://github.com/nokmem/nokmem/spdx/"

// SPDX element IDs of the fixed elements.
const (
	SourceID    = common.ElementID("Source")
	ToolchainID = common.ElementID("Toolchain")
)

const noAssertion = "NOASSERTION"

var idUnsafe = regexp.MustCompile(`[^A-Za-z0-9.-]+`)

func elementID(kind, name string) common.ElementID {
	return common.ElementID(kind + "-" + idUnsafe.ReplaceAllString(name, "-"))
}

// ModuleID is the element ID of a vendored module.
func ModuleID(m pins.Module) common.ElementID { return elementID("Module", m.String()) }

// ArtifactID is the element ID of a built file.
func ArtifactID(name string) common.ElementID { return elementID("Artifact", name) }

// Document builds the SPDX document for artifacts built from in. It is dated
// with the source commit time so that rewriting it gives the same bytes.
func Document(in *inputs.Inputs, artifacts []inputs.Artifact) (*spdx.Document, error) {
	created, err := time.Parse(time.RFC3339, in.Source.CommitTime)
	if err != nil {
		return nil, fmt.Errorf("sbom %s %s: source commit time: %w", in.Name, in.Version, err)
	}
	if len(artifacts) == 0 {
		return nil, fmt.Errorf("sbom %s %s: no artifacts", in.Name, in.Version)
	}
	doc := &spdx.Document{
		SPDXVersion:       spdx.Version,
		DataLicense:       spdx.DataLicense,
		SPDXIdentifier:    common.ElementID("DOCUMENT"),
		DocumentName:      in.Name + "-" + in.Version,
		DocumentNamespace: Namespace + in.Name + "/" + in.Version + "/" + artifacts[0].SHA256,
		CreationInfo: &spdx.CreationInfo{
			Creators: []common.Creator{{CreatorType: "Tool", Creator: "nokmem-release"}},
			Created:  created.UTC().Format(time.RFC3339),
		},
	}
	rel := func(a common.ElementID, typ string, b common.ElementID) {
		doc.Relationships = append(doc.Relationships, &spdx.Relationship{
			RefA:         common.MakeDocElementID("", string(a)),
			RefB:         common.MakeDocElementID("", string(b)),
			Relationship: typ,
		})
	}

	for _, a := range artifacts {
		id := ArtifactID(a.Name)
		doc.Packages = append(doc.Packages, &spdx.Package{
			PackageName:             a.Name,
			PackageSPDXIdentifier:   id,
			PackageVersion:          in.Version,
			PackageFileName:         a.Name,
			PackageDownloadLocation: noAssertion,
			PackageChecksums:        []common.Checksum{{Algorithm: common.SHA256, Value: a.SHA256}},
			PrimaryPackagePurpose:   "APPLICATION",
			PackageLicenseConcluded: noAssertion,
			PackageLicenseDeclared:  noAssertion,
			PackageCopyrightText:    noAssertion,
		})
		rel("DOCUMENT", common.TypeRelationshipDescribe, id)
		rel(id, common.TypeRelationshipGeneratedFrom, SourceID)
		rel(ToolchainID, common.TypeRelationshipBuildToolOf, id)
	}

	src, err := modulePackage(in.Source.Module, SourceID, "SOURCE")
	if err != nil {
		return nil, err
	}
	src.PackageComment = "upstream commit " + in.Source.Commit + ", GOPATH import path " + in.Source.ImportPath
	doc.Packages = append(doc.Packages, src)

	tc, err := modulePackage(in.Toolchain, ToolchainID, "APPLICATION")
	if err != nil {
		return nil, err
	}
	doc.Packages = append(doc.Packages, tc)

	for _, v := range in.Vendor {
		id := ModuleID(v.Module)
		p, err := modulePackage(v.Module, id, "LIBRARY")
		if err != nil {
			return nil, err
		}
		p.PackageComment = "vendored at vendor/" + v.Root
		if v.Root == "" {
			p.PackageComment = "module in the build graph (go.sum)"
		}
		doc.Packages = append(doc.Packages, p)
		rel(SourceID, common.TypeRelationshipDependsOn, id)
	}

	for i, p := range in.Patches {
		id := elementID("Patch", fmt.Sprintf("%d-%s", i+1, p.Name))
		doc.Packages = append(doc.Packages, &spdx.Package{
			PackageName:             p.Name,
			PackageSPDXIdentifier:   id,
			PackageFileName:         "patches/" + in.Name + "/" + in.Version + "/" + p.Name,
			PackageDownloadLocation: noAssertion,
			PackageChecksums:        []common.Checksum{{Algorithm: common.SHA256, Value: p.SHA256}},
			PrimaryPackagePurpose:   "SOURCE",
			PackageLicenseConcluded: noAssertion,
			PackageLicenseDeclared:  noAssertion,
			PackageCopyrightText:    noAssertion,
		})
		rel(id, common.TypeRelationshipPatchApplied, SourceID)
	}

	for _, sp := range in.SystemPackages {
		id := elementID("Deb", sp.Name)
		doc.Packages = append(doc.Packages, &spdx.Package{
			PackageName:             sp.Name,
			PackageSPDXIdentifier:   id,
			PackageVersion:          sp.Version,
			PackageDownloadLocation: noAssertion,
			PackageExternalReferences: []*spdx.PackageExternalReference{{
				Category: common.CategoryPackageManager, RefType: common.TypePackageManagerPURL, Locator: inputs.DebPURL(sp),
			}},
			PrimaryPackagePurpose:   "LIBRARY",
			PackageLicenseConcluded: noAssertion,
			PackageLicenseDeclared:  noAssertion,
			PackageCopyrightText:    noAssertion,
		})
		for _, a := range artifacts {
			rel(id, common.TypeRelationshipBuildDependencyOf, ArtifactID(a.Name))
		}
	}
	return doc, nil
}

// modulePackage describes a Go module: the h1 hash goes into the checksums
// as SHA256 (its hex form; SPDX has no h1 algorithm) and literally into the
// source info.
func modulePackage(m pins.Module, id common.ElementID, purpose string) (*spdx.Package, error) {
	hexSum, err := inputs.DirHash(m.H1)
	if err != nil {
		return nil, fmt.Errorf("sbom: module %s: %w", m, err)
	}
	return &spdx.Package{
		PackageName:             m.Path,
		PackageSPDXIdentifier:   id,
		PackageVersion:          m.Version,
		PackageDownloadLocation: "https://proxy.golang.org/" + m.Path + "/@v/" + m.Version + ".zip",
		PackageChecksums:        []common.Checksum{{Algorithm: common.SHA256, Value: hexSum}},
		PackageSourceInfo:       "go.sum " + m.H1,
		PackageExternalReferences: []*spdx.PackageExternalReference{{
			Category: common.CategoryPackageManager, RefType: common.TypePackageManagerPURL, Locator: inputs.PURL(m),
		}},
		PrimaryPackagePurpose:   purpose,
		PackageLicenseConcluded: noAssertion,
		PackageLicenseDeclared:  noAssertion,
		PackageCopyrightText:    noAssertion,
	}, nil
}

// Write writes the document as indented JSON to path.
func Write(path string, doc *spdx.Document) error {
	var buf bytes.Buffer
	if err := spdxjson.Write(doc, &buf, spdxjson.Indent("  ")); err != nil {
		return fmt.Errorf("encode SBOM %s: %w", path, err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write SBOM: %w", err)
	}
	return nil
}

// Read parses an SPDX JSON file.
func Read(path string) (*spdx.Document, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read SBOM: %w", err)
	}
	defer f.Close()
	doc, err := spdxjson.Read(f)
	if err != nil {
		return nil, fmt.Errorf("parse SBOM %s: %w", path, err)
	}
	return doc, nil
}
