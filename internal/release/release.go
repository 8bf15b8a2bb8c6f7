// Package release writes and checks the release set of an artifact
// directory: SHA256SUMS and SHA512SUMS (plus <file>.sha256/.sha512 beside
// each artifact), an SPDX 2.3 SBOM, an in-toto SLSA provenance statement and
// a minisign signature over SHA256SUMS. SHA256SUMS lists the artifacts, the
// SBOM and the provenance, so the one signature covers all of them.
//
// Verify is the check the node tool runs before installing an artifact.
package release

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/nokmem/nokmem/internal/release/inputs"
	"github.com/nokmem/nokmem/internal/release/provenance"
	"github.com/nokmem/nokmem/internal/release/sbom"
	"github.com/nokmem/nokmem/internal/release/sign"
	"github.com/nokmem/nokmem/internal/release/sums"
)

// SignatureFile is the detached signature over SHA256SUMS.
var SignatureFile = sums.SHA256.SumsFile + sign.Ext

// ErrUnlisted is returned by Verify for a file in the directory that the
// signed SHA256SUMS does not cover.
var ErrUnlisted = errors.New("file not covered by the signed checksums")

// ErrSubject is returned by Verify when the provenance does not name exactly
// the artifacts of the directory.
var ErrSubject = errors.New("provenance subjects do not match the artifacts")

// isMeta reports whether name is a file the release set writes (as opposed to an artifact).
func isMeta(name string) bool {
	if name == sbom.FileName || name == provenance.FileName || name == SignatureFile {
		return true
	}
	for _, a := range sums.Algorithms {
		if name == a.SumsFile || strings.HasSuffix(name, a.Ext) {
			return true
		}
	}
	return false
}

// listFiles returns the regular files in dir; anything else is an error.
func listFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("release directory: %w", err)
	}
	var names []string
	for _, e := range entries {
		if !e.Type().IsRegular() {
			return nil, fmt.Errorf("release directory %s: %s is not a regular file", dir, e.Name())
		}
		names = append(names, e.Name())
	}
	return names, nil
}

// Write writes the whole release set for dir, replacing an earlier set, and
// signs SHA256SUMS with the minisign secret key at keyPath. artifacts names
// the built files: they get checksum files beside them and are the
// provenance's subjects. Any other file already in dir (such as a build
// stamp) is listed in the sums too, so the signature covers it. Rewriting
// the set for the same files and inputs gives the same bytes.
func Write(dir string, in *inputs.Inputs, artifactNames []string, keyPath string) error {
	names, err := listFiles(dir)
	if err != nil {
		return err
	}
	if len(artifactNames) == 0 {
		return fmt.Errorf("release %s: no artifacts named for %s", in.Name, dir)
	}
	var others []string
	for _, n := range names {
		switch {
		case isMeta(n):
			if err := os.Remove(filepath.Join(dir, n)); err != nil {
				return fmt.Errorf("replace release set: %w", err)
			}
		case !slices.Contains(artifactNames, n):
			others = append(others, n)
		}
	}
	artifactNames = slices.Sorted(slices.Values(artifactNames))
	var artifacts []inputs.Artifact
	for _, n := range artifactNames {
		d, err := sums.File(sums.SHA256, filepath.Join(dir, n))
		if err != nil {
			return err
		}
		artifacts = append(artifacts, inputs.Artifact{Name: n, SHA256: d})
	}

	doc, err := sbom.Document(in, artifacts)
	if err != nil {
		return err
	}
	if err := sbom.Write(filepath.Join(dir, sbom.FileName), doc); err != nil {
		return err
	}
	st, err := provenance.Statement(in, artifacts)
	if err != nil {
		return err
	}
	if err := provenance.Write(filepath.Join(dir, provenance.FileName), st); err != nil {
		return err
	}
	listed := append(slices.Concat(artifactNames, others), sbom.FileName, provenance.FileName)
	if _, err := sums.Write(dir, listed, artifactNames); err != nil {
		return err
	}
	return sign.File(filepath.Join(dir, sums.SHA256.SumsFile), keyPath)
}

// Verify checks the release set in dir with the minisign public key at
// pubKeyPath: the signature over SHA256SUMS; every listed file against
// SHA256SUMS, SHA512SUMS and the files beside it; that no file escapes the
// signed list; that the SBOM parses; and that the provenance's subjects are
// exactly the artifacts (the listed files with a .sha256 beside them) with
// their sha256.
func Verify(dir, pubKeyPath string) error {
	if err := sign.Verify(filepath.Join(dir, sums.SHA256.SumsFile), pubKeyPath); err != nil {
		return err
	}
	listed, err := sums.Check(dir)
	if err != nil {
		return err
	}
	names, err := listFiles(dir)
	if err != nil {
		return err
	}
	isListed := map[string]bool{}
	for _, n := range listed {
		isListed[n] = true
	}
	for _, n := range names {
		if isListed[n] || n == SignatureFile {
			continue
		}
		covered := false
		for _, a := range sums.Algorithms {
			if n == a.SumsFile || (strings.HasSuffix(n, a.Ext) && isListed[strings.TrimSuffix(n, a.Ext)]) {
				covered = true
			}
		}
		if !covered {
			return fmt.Errorf("%s: %w", filepath.Join(dir, n), ErrUnlisted)
		}
	}
	for _, n := range []string{sbom.FileName, provenance.FileName} {
		if !isListed[n] {
			return fmt.Errorf("%s: %s is missing from %s", dir, n, sums.SHA256.SumsFile)
		}
	}
	if _, err := sbom.Read(filepath.Join(dir, sbom.FileName)); err != nil {
		return err
	}
	return checkSubjects(dir, listed)
}

// checkSubjects compares the provenance subjects with the listed artifacts.
func checkSubjects(dir string, listed []string) error {
	want, err := sums.Parse(filepath.Join(dir, sums.SHA256.SumsFile))
	if err != nil {
		return err
	}
	st, err := provenance.Read(filepath.Join(dir, provenance.FileName))
	if err != nil {
		return err
	}
	var artifacts, subjects []string
	for _, n := range listed {
		if _, err := os.Stat(filepath.Join(dir, n+sums.SHA256.Ext)); err == nil {
			artifacts = append(artifacts, n+" "+want[n])
		}
	}
	for _, s := range st.GetSubject() {
		subjects = append(subjects, s.GetName()+" "+s.GetDigest()["sha256"])
	}
	sort.Strings(subjects)
	if !slices.Equal(artifacts, subjects) {
		return fmt.Errorf("%s: %w: artifacts %v, subjects %v", filepath.Join(dir, provenance.FileName), ErrSubject, artifacts, subjects)
	}
	return nil
}
