package bundle_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nokmem/nokmem/internal/bundle"
	"github.com/nokmem/nokmem/internal/bundle/bundletest"
	"github.com/nokmem/nokmem/internal/release/sums"
)

// beside returns the coreutils line of file in dir for algorithm a: what a
// correct <file>.sha256 or <file>.sha512 holds.
func beside(t *testing.T, a sums.Algorithm, dir, file string) string {
	t.Helper()
	d, err := sums.File(a, filepath.Join(dir, file))
	must(t, err)
	return d + "  " + file + "\n"
}

// TestVerifyRejectsExtraMetadata: the only files of a bundle that its
// signed SHA256SUMS does not list are SHA256SUMS, SHA512SUMS and
// SHA256SUMS.minisig. Anything else that looks like metadata (a name
// ending in .sha256 or .sha512, correct or not, another sums file) is an
// extra file, refused by name with and without the signature check.
func TestVerifyRejectsExtraMetadata(t *testing.T) {
	sha256, sha512 := sums.Algorithms[0], sums.Algorithms[1]
	tests := []struct {
		file    string
		content func(t *testing.T, dir string) string
	}{
		{"evil.sha256", func(*testing.T, string) string { return "not a checksum\n" }},
		{"evil.sha512", func(*testing.T, string) string { return "#!/bin/sh\nrm -rf /\n" }},
		{"kubelet.sha512", func(t *testing.T, dir string) string { return beside(t, sha512, dir, "kubelet") }},
		{"kubelet.sha256", func(t *testing.T, dir string) string { return beside(t, sha256, dir, "kubelet") }},
		{"manifest.json.sha256", func(t *testing.T, dir string) string { return beside(t, sha256, dir, "manifest.json") }},
		{"SHA256SUMS.sha512", func(t *testing.T, dir string) string { return beside(t, sha512, dir, "SHA256SUMS") }},
		{"SHA1SUMS", func(*testing.T, string) string { return "da39a3ee5e6b4b0d3255bfef95601890afd80709  kubelet\n" }},
		{"SHA512SUMS.minisig", func(*testing.T, string) string { return "untrusted comment: x\n" }},
	}
	for _, tt := range tests {
		for _, signed := range []bool{true, false} {
			sub := tt.file + map[bool]string{true: "/signed", false: "/unsigned"}[signed]
			t.Run(sub, func(t *testing.T) {
				f := bundletest.Make(t, name, "", "")
				must(t, os.WriteFile(filepath.Join(f.Dir, tt.file), []byte(tt.content(t, f.Dir)), 0o644))
				var err error
				if signed {
					_, err = bundle.Verify(f.Dir, f.Pub)
				} else {
					_, err = bundle.VerifyUnsigned(f.Dir)
				}
				if !errors.Is(err, bundle.ErrExtraFile) || !strings.Contains(err.Error(), tt.file+": ") {
					t.Fatalf("Verify with an extra %s: %v, want ErrExtraFile naming it", tt.file, err)
				}
			})
		}
	}
}
