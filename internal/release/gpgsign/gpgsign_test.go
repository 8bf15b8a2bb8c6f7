package gpgsign

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nokmem/nokmem/internal/testenv"
)

var when = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

func other(t *testing.T) *Key {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "other-rsa4096.asc"))
	if err != nil {
		t.Fatal(err)
	}
	k, err := Read("testdata/other-rsa4096.asc", data, nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Read takes an RSA 4096 secret key and refuses a public key, a short RSA
// key and an encrypted key without its password.
func TestRead(t *testing.T) {
	k := other(t)
	if len(k.Fingerprint()) != 40 || len(k.KeyID()) != 16 || !strings.HasSuffix(strings.ToLower(k.Fingerprint()), k.KeyID()) {
		t.Errorf("fingerprint %s key id %s", k.Fingerprint(), k.KeyID())
	}
	pub, err := k.Public()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Read("pub", pub, nil); err == nil || !strings.Contains(err.Error(), "public key") {
		t.Errorf("Read of a public key: %v", err)
	}
	short, err := Generate("short", "s@nokmem.invalid", 2048, when)
	if err != nil {
		t.Fatal(err)
	}
	s, err := short.Secret()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Read("short.asc", s, nil); err == nil || !strings.Contains(err.Error(), "2048 bits") || !strings.Contains(err.Error(), "short.asc") {
		t.Errorf("Read of an RSA 2048 key: %v", err)
	}
}

// Signatures verify with the public key, not with another key and not
// over changed data; the same inputs give the same bytes; gpg agrees.
func TestSignVerify(t *testing.T) {
	k := other(t)
	pub, _ := k.Public()
	data := []byte("<repomd/>\n")
	sig, err := k.ArmoredSign(data, when)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := k.ArmoredSign(data, when); !bytes.Equal(sig, again) {
		t.Error("two signatures of the same data at the same time differ")
	}
	if err := VerifyArmored("repomd.xml", pub, data, sig); err != nil {
		t.Fatal(err)
	}
	if err := VerifyArmored("repomd.xml", pub, []byte("<repomd>x</repomd>\n"), sig); !errors.Is(err, ErrBadSignature) || !strings.Contains(err.Error(), "repomd.xml") {
		t.Errorf("changed data: %v", err)
	}
	short, err := Generate("short", "s@nokmem.invalid", 2048, when)
	if err != nil {
		t.Fatal(err)
	}
	spub, _ := short.Public()
	if err := VerifyArmored("repomd.xml", spub, data, sig); err == nil {
		t.Error("another key's public key verified the signature")
	}
	// The reference implementation: gpg --verify, V4 RSA with SHA256.
	gpg := testenv.RequireCommand(t, "gpg")
	home := t.TempDir()
	dir := t.TempDir()
	for name, b := range map[string][]byte{"pub.asc": pub, "repomd.xml": data, "repomd.xml.asc": sig} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command(gpg, "--homedir", home, "--batch", "--import", filepath.Join(dir, "pub.asc")).CombinedOutput(); err != nil {
		t.Fatalf("gpg --import: %v\n%s", err, out)
	}
	out, err := exec.Command(gpg, "--homedir", home, "--batch", "--status-fd", "1", "--verify", filepath.Join(dir, "repomd.xml.asc"), filepath.Join(dir, "repomd.xml")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "VALIDSIG "+k.Fingerprint()) {
		t.Fatalf("gpg --verify: %v\n%s", err, out)
	}
	// VALIDSIG fpr date ts expire <sig version 4> <reserved> <pubkey algo 1 RSA> <hash algo 8 SHA256>
	if !strings.Contains(string(out), " 0 4 0 1 8 00 "+k.Fingerprint()) {
		t.Errorf("gpg: not a V4 RSA/SHA256 signature:\n%s", out)
	}
	bin, err := k.Sign(data, when)
	if err != nil || len(bin) == 0 || bin[0]&0x80 == 0 {
		t.Fatalf("binary signature: %v %x", err, bin)
	}
}
