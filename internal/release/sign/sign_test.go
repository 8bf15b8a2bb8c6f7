package sign

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/nokmem/nokmem/internal/testenv"
)

func TestSignVerify(t *testing.T) {
	dir := t.TempDir()
	secret, pub := filepath.Join(dir, "k.key"), filepath.Join(dir, "k.pub")
	if err := GenerateKey(secret, pub); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(secret); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret key mode: %v, %v", fi, err)
	}
	if err := GenerateKey(secret, pub); err == nil {
		t.Fatal("GenerateKey overwrote an existing secret key")
	}
	msg := filepath.Join(dir, "SHA256SUMS")
	if err := os.WriteFile(msg, []byte("ab  runc\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := File(msg, secret); err != nil {
		t.Fatal(err)
	}
	if err := Verify(msg, pub); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if err := os.WriteFile(msg, []byte("cd  runc\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Verify(msg, pub); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("Verify of a changed file: %v, want %v", err, ErrBadSignature)
	}
}

// TestReferenceToolVerifies checks the file format with the minisign tool
// itself (Debian package minisign): it must accept our signature and
// reject it over changed bytes.
func TestReferenceToolVerifies(t *testing.T) {
	minisign := testenv.RequireCommand(t, "minisign")
	dir := t.TempDir()
	secret, pub := filepath.Join(dir, "k.key"), filepath.Join(dir, "k.pub")
	if err := GenerateKey(secret, pub); err != nil {
		t.Fatal(err)
	}
	msg := filepath.Join(dir, "SHA256SUMS")
	if err := os.WriteFile(msg, []byte("ab  runc\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := File(msg, secret); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(minisign, "-Vm", msg, "-p", pub).CombinedOutput(); err != nil {
		t.Fatalf("minisign -V rejects our signature: %v\n%s", err, out)
	}
	if err := os.WriteFile(msg, []byte("cd  runc\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(minisign, "-Vm", msg, "-p", pub).CombinedOutput(); err == nil {
		t.Fatalf("minisign -V accepted a signature over other bytes:\n%s", out)
	}
}

func TestFileNeedsKey(t *testing.T) {
	dir := t.TempDir()
	msg := filepath.Join(dir, "m")
	if err := os.WriteFile(msg, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, key string }{
		{"missing", filepath.Join(dir, "nope")},
		{"garbage", msg},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := File(msg, tt.key); err == nil {
				t.Fatal("File signed without a usable key")
			}
		})
	}
}
