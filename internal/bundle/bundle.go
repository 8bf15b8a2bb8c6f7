// Package bundle assembles, packs, unpacks and checks the nokmem node
// bundle: one folder (and a reproducible .tar.gz of it) holding the kubelet,
// runc and verify binaries, a manifest saying what each is and which node
// binaries it may replace, the SBOM and provenance of each, SHA256SUMS and
// SHA512SUMS over all of it, and one minisign signature over SHA256SUMS.
//
// The checksum, SBOM, provenance and signature formats are those of
// internal/release; this package only arranges them into one signed set.
package bundle

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"github.com/nokmem/nokmem/internal/release"
	"github.com/nokmem/nokmem/internal/release/provenance"
	"github.com/nokmem/nokmem/internal/release/sbom"
	"github.com/nokmem/nokmem/internal/release/sign"
	"github.com/nokmem/nokmem/internal/release/sums"
)

// ManifestFile is the manifest's name in a bundle.
const ManifestFile = "manifest.json"

// NamePrefix starts every bundle's name.
const NamePrefix = "nokmem-"

// Binary is one binary of the bundle.
type Binary struct {
	// Name is the file name in the bundle ("kubelet", "runc", "verify").
	Name string `json:"name"`
	// Project and Version say what it is: "kubernetes" "v1.12.4+nokmem.…".
	Project string `json:"project"`
	Version string `json:"version"`
	SHA256  string `json:"sha256"`
	// Replaces are the node binaries (by name, found in the usual search
	// directories) that this file may replace: runc serves both "runc" and
	// "docker-runc". Empty for verify, which is run from the bundle.
	Replaces []string `json:"replaces"`
	// SBOM and Provenance are the file names of its SPDX SBOM and in-toto
	// provenance statement in the bundle.
	SBOM       string `json:"sbom"`
	Provenance string `json:"provenance"`
}

// Manifest describes a bundle.
type Manifest struct {
	// Name is the bundle's name, also its folder name:
	// nokmem-<kubelet version>-<runc version>+<marker>.
	Name     string   `json:"name"`
	Binaries []Binary `json:"binaries"`
	// SigningKey is the key the bundle was signed with.
	SigningKey SigningKey `json:"signing_key"`
}

// SigningKey names the key that signed a bundle. The manifest is covered by
// the signature, so a bundle signed with the development key says so in a
// way that cannot be edited away.
type SigningKey struct {
	ID string `json:"id"`
	// Development is true for the key the build makes when no release key
	// is configured: such a bundle is for tests, never for a fleet.
	Development bool `json:"development,omitempty"`
}

// DevKeyWarning is the red-flag line printed by the build and by install
// for a bundle signed with the development key.
func DevKeyWarning(id string) string {
	return "!!! SIGNED WITH THE DEVELOPMENT KEY " + id + ": NOT A RELEASE, DO NOT SHIP TO A NODE YOU CARE ABOUT !!!"
}

// Binary returns the entry for file name, or nil.
func (m *Manifest) Binary(name string) *Binary {
	for i := range m.Binaries {
		if m.Binaries[i].Name == name {
			return &m.Binaries[i]
		}
	}
	return nil
}

// Part is one release directory (written by internal/release) that goes
// into the bundle.
type Part struct {
	// Dir is the release directory holding the binary, its SBOM and its provenance.
	Dir string
	// Binary names the file in Dir and says what it is; SHA256, SBOM and
	// Provenance are filled by Assemble.
	Binary Binary
}

// Name is the bundle name for the kubelet and runc versions and the bundle's marker.
func Name(kubeletVersion, runcVersion, marker string) string {
	return NamePrefix + kubeletVersion + "-" + runcVersion + "+" + marker
}

// File is a record of the whole bundle written beside the manifest, such
// as its vulnerability account (VULNERABILITIES.json and .md).
type File struct {
	Name string
	Data []byte
}

// Assemble writes the bundle name into the new folder dir (which must not
// exist): each part's release set is checked with the public key pub, its
// binary, SBOM and provenance are copied, the manifest and the files are
// written, then the sums over every file and the signature with the secret
// key key. devKey marks the bundle as signed with the development key.
func Assemble(dir, name string, parts []Part, key, pub string, devKey bool, files ...File) (*Manifest, error) {
	id, err := sign.KeyID(pub)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", name, err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	m := &Manifest{Name: name, SigningKey: SigningKey{ID: id, Development: devKey}}
	var names []string
	for _, p := range parts {
		if err := release.Verify(p.Dir, pub); err != nil {
			return nil, fmt.Errorf("bundle %s: part %s: %w", name, p.Binary.Name, err)
		}
		b := p.Binary
		b.SBOM, b.Provenance = b.Name+"."+sbom.FileName, b.Name+"."+provenance.FileName
		for src, dst := range map[string]string{b.Name: b.Name, sbom.FileName: b.SBOM, provenance.FileName: b.Provenance} {
			mode := os.FileMode(0o644)
			if dst == b.Name {
				mode = 0o755
			}
			if err := copyFile(filepath.Join(p.Dir, src), filepath.Join(dir, dst), mode); err != nil {
				return nil, fmt.Errorf("bundle %s: %w", name, err)
			}
		}
		if b.SHA256, err = sums.File(sums.SHA256, filepath.Join(dir, b.Name)); err != nil {
			return nil, err
		}
		if b.Replaces == nil {
			b.Replaces = []string{}
		}
		m.Binaries = append(m.Binaries, b)
		names = append(names, b.Name, b.SBOM, b.Provenance)
	}
	sort.Slice(m.Binaries, func(i, j int) bool { return m.Binaries[i].Name < m.Binaries[j].Name })
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, ManifestFile), append(data, '\n'), 0o644); err != nil {
		return nil, fmt.Errorf("bundle %s: manifest: %w", name, err)
	}
	names = append(names, ManifestFile)
	for _, f := range files {
		if f.Name != filepath.Base(f.Name) || slices.Contains(names, f.Name) || f.Name == release.SignatureFile ||
			slices.ContainsFunc(sums.Algorithms, func(a sums.Algorithm) bool { return a.SumsFile == f.Name }) {
			return nil, fmt.Errorf("bundle %s: file %q clashes with the bundle's own files", name, f.Name)
		}
		if err := os.WriteFile(filepath.Join(dir, f.Name), f.Data, 0o644); err != nil {
			return nil, fmt.Errorf("bundle %s: %w", name, err)
		}
		names = append(names, f.Name)
	}
	if _, err := sums.Write(dir, names, nil); err != nil {
		return nil, err
	}
	if err := sign.File(filepath.Join(dir, sums.SHA256.SumsFile), key); err != nil {
		return nil, err
	}
	return m, nil
}

// Errors of Verify.
var (
	ErrExtraFile = errors.New("file not covered by the bundle's signed SHA256SUMS")
	ErrManifest  = errors.New("bundle manifest does not match the signed files")
)

// Verify checks the bundle folder dir with the minisign public key at pub
// and returns its manifest: the signature over SHA256SUMS; every listed file
// against SHA256SUMS and SHA512SUMS; no other file or folder in dir; the
// manifest lists every binary with its sha256, and each binary's SBOM parses
// and names it with that sha256, as does its provenance's subject.
func Verify(dir, pub string) (*Manifest, error) {
	sumsPath := filepath.Join(dir, sums.SHA256.SumsFile)
	if err := sign.Verify(sumsPath, pub); err != nil {
		return nil, fmt.Errorf("bundle %s: %w", dir, err)
	}
	m, err := VerifyUnsigned(dir)
	if err != nil {
		return nil, err
	}
	if id, err := sign.KeyID(pub); err != nil || id != m.SigningKey.ID {
		return nil, fmt.Errorf("bundle %s: manifest names signing key %q, the key %s is %q: %w", dir, m.SigningKey.ID, pub, id, ErrManifest)
	}
	return m, nil
}

// VerifyUnsigned runs every check of Verify except the signature's: for
// --insecure-skip-signature, which still refuses a corrupt or padded bundle.
func VerifyUnsigned(dir string) (*Manifest, error) {
	sumsPath := filepath.Join(dir, sums.SHA256.SumsFile)
	listed, err := sums.Check(dir)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", dir, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	for _, e := range entries {
		n := e.Name()
		meta := n == release.SignatureFile || slices.ContainsFunc(sums.Algorithms, func(a sums.Algorithm) bool { return a.SumsFile == n })
		if !e.Type().IsRegular() {
			return nil, fmt.Errorf("bundle %s: %s is not a regular file (%s)", dir, n, e.Type())
		}
		if !meta && !slices.Contains(listed, n) {
			return nil, fmt.Errorf("bundle %s: %s: %w", dir, n, ErrExtraFile)
		}
	}
	if !slices.Contains(listed, ManifestFile) {
		return nil, fmt.Errorf("bundle %s: %s is not listed in %s: %w", dir, ManifestFile, sums.SHA256.SumsFile, ErrManifest)
	}
	m, err := ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	sha, err := sums.Parse(sumsPath)
	if err != nil {
		return nil, err
	}
	for _, b := range m.Binaries {
		if b.Name != filepath.Base(b.Name) || sha[b.Name] == "" || sha[b.Name] != b.SHA256 {
			return nil, fmt.Errorf("bundle %s: %s: %w (manifest sha256 %s, SHA256SUMS %q)", dir, b.Name, ErrManifest, b.SHA256, sha[b.Name])
		}
		if err := checkRecords(dir, b, sha); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// checkRecords checks that b's SBOM and provenance are signed and name b with its digest.
func checkRecords(dir string, b Binary, sha map[string]string) error {
	for _, f := range []string{b.SBOM, b.Provenance} {
		if f != filepath.Base(f) || sha[f] == "" {
			return fmt.Errorf("bundle %s: %s's record %q is not a signed file: %w", dir, b.Name, f, ErrManifest)
		}
	}
	doc, err := sbom.Read(filepath.Join(dir, b.SBOM))
	if err != nil {
		return err
	}
	found := false
	for _, p := range doc.Packages {
		for _, c := range p.PackageChecksums {
			if p.PackageFileName == b.Name && c.Value == b.SHA256 {
				found = true
			}
		}
	}
	if !found {
		return fmt.Errorf("bundle %s: %s does not describe %s with sha256 %s: %w", dir, b.SBOM, b.Name, b.SHA256, ErrManifest)
	}
	st, err := provenance.Read(filepath.Join(dir, b.Provenance))
	if err != nil {
		return err
	}
	for _, s := range st.GetSubject() {
		if s.GetName() == b.Name && s.GetDigest()["sha256"] == b.SHA256 {
			return nil
		}
	}
	return fmt.Errorf("bundle %s: %s has no subject %s with sha256 %s: %w", dir, b.Provenance, b.Name, b.SHA256, ErrManifest)
}

// ReadManifest parses dir's manifest (without checking anything else).
func ReadManifest(dir string) (*Manifest, error) {
	data, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("bundle %s: %w", filepath.Join(dir, ManifestFile), err)
	}
	if m.Name == "" || len(m.Binaries) == 0 {
		return nil, fmt.Errorf("bundle %s: no name or no binaries: %w", filepath.Join(dir, ManifestFile), ErrManifest)
	}
	return &m, nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.WriteFile(dst, data, mode); err != nil {
		return err
	}
	return os.Chmod(dst, mode)
}
