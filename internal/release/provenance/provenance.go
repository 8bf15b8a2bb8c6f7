// Package provenance writes an in-toto v1 statement whose predicate is SLSA
// provenance v1, naming every input of a build: the source module, every
// vendored module and the toolchain (as dirHash digests of their h1), the
// patches (sha256), the build flags and, for cgo builds, the Debian packages
// of the C toolchain and libraries.
package provenance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"

	slsa "github.com/in-toto/attestation/go/predicates/provenance/v1"
	intoto "github.com/in-toto/attestation/go/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/nokmem/nokmem/internal/pins"
	"github.com/nokmem/nokmem/internal/release/inputs"
)

// FileName is the statement's name in a release directory.
const FileName = "provenance.intoto.json"

// PredicateType is SLSA provenance v1.
const PredicateType = "https://slsa.dev/provenance/v1"

// BuildType names nokmem's build recipe: a GOPATH tree rebuilt from pinned
// module zips, patched, compiled with a pinned toolchain.
const BuildType = "https://github.com/nokmem/nokmem/buildtypes/gopath-vendor/v1"

// BuilderID identifies the builder.
const BuilderID = "https://github.com/nokmem/nokmem/magefiles"

// Statement builds the in-toto statement for artifacts built from in.
func Statement(in *inputs.Inputs, artifacts []inputs.Artifact) (*intoto.Statement, error) {
	var deps []*intoto.ResourceDescriptor
	addModule := func(role string, m pins.Module, extra map[string]any) error {
		d, err := inputs.DirHash(m.H1)
		if err != nil {
			return fmt.Errorf("provenance: %s %s: %w", role, m, err)
		}
		ann := map[string]any{"role": role, "h1": m.H1}
		for k, v := range extra {
			ann[k] = v
		}
		a, err := structpb.NewStruct(ann)
		if err != nil {
			return fmt.Errorf("provenance: %s %s: %w", role, m, err)
		}
		deps = append(deps, &intoto.ResourceDescriptor{
			Name:             m.Path + "@" + m.Version,
			Uri:              inputs.PURL(m),
			Digest:           map[string]string{string(intoto.AlgorithmDirHash): d},
			DownloadLocation: "https://proxy.golang.org/" + m.Path + "/@v/" + m.Version + ".zip",
			Annotations:      a,
		})
		return nil
	}
	if err := addModule("source", in.Source.Module, map[string]any{"commit": in.Source.Commit, "importPath": in.Source.ImportPath}); err != nil {
		return nil, err
	}
	if err := addModule("toolchain", in.Toolchain, nil); err != nil {
		return nil, err
	}
	for _, v := range in.Vendor {
		if err := addModule("vendor", v.Module, map[string]any{"vendorRoot": v.Root}); err != nil {
			return nil, err
		}
	}
	for _, p := range in.Patches {
		deps = append(deps, &intoto.ResourceDescriptor{
			Name:   "patches/" + in.Name + "/" + in.Version + "/" + p.Name,
			Digest: map[string]string{string(intoto.AlgorithmSHA256): p.SHA256},
		})
	}
	for _, sp := range in.SystemPackages {
		deps = append(deps, &intoto.ResourceDescriptor{
			Name: sp.Name + "=" + sp.Version,
			Uri:  inputs.DebPURL(sp),
		})
	}

	ext, err := structpb.NewStruct(map[string]any{
		"project":  in.Name,
		"version":  in.Version,
		"packages": anyList(in.Build.Packages),
		"tags":     anyList(in.Build.Tags),
		"ldflags":  anyList(in.Build.LDFlags),
		"command":  anyList(in.Build.Command),
		"cgo":      in.Build.CGO,
		"static":   in.Build.Static,
		"patches":  patchList(in.Patches),
	})
	if err != nil {
		return nil, fmt.Errorf("provenance: external parameters: %w", err)
	}
	internal, err := structpb.NewStruct(map[string]any{
		"env":            anyList(in.Build.Env),
		"toolchain":      in.Toolchain.String(),
		"systemPackages": debList(in.SystemPackages),
	})
	if err != nil {
		return nil, fmt.Errorf("provenance: internal parameters: %w", err)
	}
	pred := &slsa.Provenance{
		BuildDefinition: &slsa.BuildDefinition{
			BuildType:            BuildType,
			ExternalParameters:   ext,
			InternalParameters:   internal,
			ResolvedDependencies: deps,
		},
		RunDetails: &slsa.RunDetails{Builder: &slsa.Builder{Id: BuilderID}},
	}
	predStruct, err := toStruct(pred)
	if err != nil {
		return nil, err
	}
	st := &intoto.Statement{
		Type:          intoto.StatementTypeUri,
		PredicateType: PredicateType,
		Predicate:     predStruct,
	}
	for _, a := range artifacts {
		st.Subject = append(st.Subject, &intoto.ResourceDescriptor{
			Name:   a.Name,
			Digest: map[string]string{string(intoto.AlgorithmSHA256): a.SHA256},
		})
	}
	if err := st.Validate(); err != nil {
		return nil, fmt.Errorf("provenance %s %s: %w", in.Name, in.Version, err)
	}
	return st, nil
}

func anyList(ss []string) []any {
	out := make([]any, 0, len(ss))
	for _, s := range ss {
		out = append(out, s)
	}
	return out
}

func patchList(ps []inputs.Patch) []any {
	out := make([]any, 0, len(ps))
	for _, p := range ps {
		out = append(out, map[string]any{"name": p.Name, "sha256": p.SHA256})
	}
	return out
}

func debList(ps []inputs.SystemPackage) []any {
	out := make([]any, 0, len(ps))
	for _, p := range ps {
		out = append(out, map[string]any{"name": p.Name, "version": p.Version})
	}
	return out
}

// toStruct converts the predicate message into the statement's generic struct.
func toStruct(p *slsa.Provenance) (*structpb.Struct, error) {
	data, err := protojson.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("provenance: encode predicate: %w", err)
	}
	s := &structpb.Struct{}
	if err := protojson.Unmarshal(data, s); err != nil {
		return nil, fmt.Errorf("provenance: predicate to struct: %w", err)
	}
	return s, nil
}

// Predicate extracts the SLSA provenance predicate from a statement.
func Predicate(st *intoto.Statement) (*slsa.Provenance, error) {
	data, err := protojson.Marshal(st.GetPredicate())
	if err != nil {
		return nil, fmt.Errorf("provenance: encode predicate: %w", err)
	}
	p := &slsa.Provenance{}
	if err := protojson.Unmarshal(data, p); err != nil {
		return nil, fmt.Errorf("provenance: decode SLSA predicate: %w", err)
	}
	return p, nil
}

// Write writes the statement as JSON to path. protojson varies its
// whitespace on purpose, so the output is re-indented with encoding/json to
// keep rewrites byte-identical.
func Write(path string, st *intoto.Statement) error {
	data, err := protojson.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode provenance %s: %w", path, err)
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, data, "", "  "); err != nil {
		return fmt.Errorf("encode provenance %s: %w", path, err)
	}
	buf.WriteByte('\n')
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write provenance: %w", err)
	}
	return nil
}

// Read parses and validates a statement file.
func Read(path string) (*intoto.Statement, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read provenance: %w", err)
	}
	st := &intoto.Statement{}
	if err := protojson.Unmarshal(data, st); err != nil {
		return nil, fmt.Errorf("parse provenance %s: %w", path, err)
	}
	if err := st.Validate(); err != nil {
		return nil, fmt.Errorf("provenance %s: %w", path, err)
	}
	return st, nil
}
