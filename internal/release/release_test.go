package release

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/nokmem/nokmem/internal/release/inputs/inputstest"
	"github.com/nokmem/nokmem/internal/release/provenance"
	"github.com/nokmem/nokmem/internal/release/sbom"
	"github.com/nokmem/nokmem/internal/release/sign"
	"github.com/nokmem/nokmem/internal/release/sums"
)

// setup writes two artifacts and their release set, and returns the directory and the public key.
func setup(t *testing.T) (dir, pub string) {
	t.Helper()
	keys := t.TempDir()
	secret, pub := filepath.Join(keys, "release.key"), filepath.Join(keys, "release.pub")
	if err := sign.GenerateKey(secret, pub); err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	for name, content := range map[string]string{"runc": "binary", "runc.tar": "tarball", "INPUTS": "stamp"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := Write(dir, inputstest.Runc(), []string{"runc.tar", "runc"}, secret); err != nil {
		t.Fatalf("Write: %v", err)
	}
	return dir, pub
}

func TestWriteThenVerify(t *testing.T) {
	dir, pub := setup(t)
	if err := Verify(dir, pub); err != nil {
		t.Fatalf("Verify of an untouched set: %v", err)
	}
	for _, n := range []string{"SHA256SUMS", "SHA512SUMS", "SHA256SUMS.minisig", "runc.sha256", "runc.sha512", "runc.tar.sha256", sbom.FileName, provenance.FileName} {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			t.Errorf("release set lacks %s: %v", n, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "INPUTS.sha256")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("INPUTS is not an artifact but got a checksum file beside it (%v)", err)
	}
	listed, err := sums.Parse(filepath.Join(dir, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"runc", "runc.tar", "INPUTS", sbom.FileName, provenance.FileName} {
		if _, ok := listed[n]; !ok {
			t.Errorf("SHA256SUMS does not list %s", n)
		}
	}
}

func TestRewriteIsReproducible(t *testing.T) {
	dir, _ := setup(t)
	read := func() map[string][]byte {
		out := map[string][]byte{}
		names, err := listFiles(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			b, err := os.ReadFile(filepath.Join(dir, n))
			if err != nil {
				t.Fatal(err)
			}
			out[n] = b
		}
		return out
	}
	before := read()
	keyDir := t.TempDir()
	secret := filepath.Join(keyDir, "k")
	if err := sign.GenerateKey(secret, filepath.Join(keyDir, "p")); err != nil {
		t.Fatal(err)
	}
	if err := Write(dir, inputstest.Runc(), []string{"runc", "runc.tar"}, secret); err != nil {
		t.Fatal(err)
	}
	after := read()
	if len(before) != len(after) {
		t.Fatalf("rewrite changed the file set: %d → %d files", len(before), len(after))
	}
	for n, b := range before {
		if n == SignatureFile {
			continue // another key signs differently
		}
		if !bytes.Equal(b, after[n]) {
			t.Errorf("%s differs after rewriting the set", n)
		}
	}
}

func TestVerifyRejectsTampering(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(t *testing.T, dir string)
		want   error // nil: any error
	}{
		{"binary", appendTo("runc", "x"), sums.ErrMismatch},
		{"second artifact", appendTo("runc.tar", "x"), sums.ErrMismatch},
		{"SHA256SUMS", replaceIn("SHA256SUMS", "  runc\n", "  runc \n"), sign.ErrBadSignature},
		{"SHA512SUMS", replaceIn("SHA512SUMS", "a", "b"), nil},
		{"beside file", replaceIn("runc.sha256", "  runc", "  runc.tar"), sums.ErrMismatch},
		{"SBOM", replaceIn(sbom.FileName, "v0.8.0", "v0.8.1"), sums.ErrMismatch},
		{"provenance", replaceIn(provenance.FileName, "seccomp", "nokmem"), sums.ErrMismatch},
		{"signature", replaceIn(SignatureFile, "file:SHA256SUMS", "file:SHA256SUMZ"), sign.ErrBadSignature},
		{"signature removed", remove(SignatureFile), os.ErrNotExist},
		{"unlisted file", appendTo("evil", "x"), ErrUnlisted},
		{"other covered file", appendTo("INPUTS", "x"), sums.ErrMismatch},
		{"beside file removed", remove("runc.tar.sha256"), ErrSubject},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, pub := setup(t)
			tt.tamper(t, dir)
			err := Verify(dir, pub)
			if err == nil {
				t.Fatal("Verify accepted a tampered release set")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Verify: %v, want %v", err, tt.want)
			}
		})
	}
}

func TestVerifyRejectsOtherKey(t *testing.T) {
	dir, _ := setup(t)
	keys := t.TempDir()
	other := filepath.Join(keys, "other.pub")
	if err := sign.GenerateKey(filepath.Join(keys, "other.key"), other); err != nil {
		t.Fatal(err)
	}
	if err := Verify(dir, other); !errors.Is(err, sign.ErrBadSignature) {
		t.Fatalf("Verify with another key: %v, want %v", err, sign.ErrBadSignature)
	}
}

func TestWriteNeedsArtifacts(t *testing.T) {
	keys := t.TempDir()
	secret := filepath.Join(keys, "k")
	if err := sign.GenerateKey(secret, filepath.Join(keys, "p")); err != nil {
		t.Fatal(err)
	}
	if err := Write(t.TempDir(), inputstest.Runc(), nil, secret); err == nil {
		t.Fatal("Write without artifacts succeeded")
	}
}

func appendTo(name, s string) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(s); err != nil {
			t.Fatal(err)
		}
	}
}

func replaceIn(name, old, new string) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		p := filepath.Join(dir, name)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte(old)) {
			t.Fatalf("%s does not contain %q", name, old)
		}
		if err := os.WriteFile(p, bytes.Replace(b, []byte(old), []byte(new), 1), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func remove(name string) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}
