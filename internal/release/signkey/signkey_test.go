package signkey

import (
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"aead.dev/minisign"

	"github.com/nokmem/nokmem/internal/release/sign"
)

// env is a getenv over a map.
func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// pair makes a key pair in dir named name and returns its paths.
func pair(t *testing.T, dir, name string) (secret, pub string) {
	t.Helper()
	secret, pub = filepath.Join(dir, name+".key"), filepath.Join(dir, name+".key.pub")
	if err := sign.GenerateKey(secret, pub); err != nil {
		t.Fatal(err)
	}
	return secret, pub
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestDevelopmentKeyWithoutRelease(t *testing.T) {
	dir := t.TempDir()
	dev := DevPair{Secret: filepath.Join(dir, "dev", "nokmem-dev.key"), Public: filepath.Join(dir, "dev", "nokmem-dev.pub")}
	k, err := Choose(env(nil), dev)
	if err != nil {
		t.Fatal(err)
	}
	if !k.Dev || k.Secret != dev.Secret || k.Public != dev.Public || len(k.ID) != 16 {
		t.Fatalf("no key configured: got %+v, want the development pair, made on first use", k)
	}
	again, err := Choose(env(map[string]string{ReleaseEnv: "0"}), dev)
	if err != nil || again.ID != k.ID {
		t.Fatalf("second call: %+v, %v; want the same development key %s", again, err, k.ID)
	}
	// The development key given explicitly, outside a release, is allowed but marked.
	got, err := Choose(env(map[string]string{KeyEnv: dev.Secret, PubEnv: dev.Public}), dev)
	if err != nil || !got.Dev {
		t.Fatalf("development key through %s without a release: %+v, %v; want it marked Dev", KeyEnv, got, err)
	}
}

func TestReleaseRefusesDevelopmentKey(t *testing.T) {
	dir := t.TempDir()
	devSecret, devPub := pair(t, filepath.Join(dir, "dev"), "nokmem-dev")
	dev := DevPair{Secret: devSecret, Public: devPub}
	copySecret, copyPub := filepath.Join(dir, "copy.key"), filepath.Join(dir, "copy.key.pub")
	copyFile(t, devSecret, copySecret)
	copyFile(t, devPub, copyPub)
	for name, e := range map[string]map[string]string{
		"the development key file": {ReleaseEnv: "1", KeyEnv: devSecret, PubEnv: devPub},
		"a copy of it elsewhere":   {ReleaseEnv: "1", KeyEnv: copySecret},
	} {
		t.Run(name, func(t *testing.T) {
			k, err := Choose(env(e), dev)
			if !errors.Is(err, ErrDevKey) {
				t.Fatalf("got %+v, %v; want %v", k, err, ErrDevKey)
			}
			id, _ := sign.KeyID(devPub)
			if !strings.Contains(err.Error(), id) {
				t.Errorf("error %q does not name the key id %s", err, id)
			}
		})
	}
}

func TestReleaseWithoutKeyMakesNoDevelopmentKey(t *testing.T) {
	dir := t.TempDir()
	dev := DevPair{Secret: filepath.Join(dir, "nokmem-dev.key"), Public: filepath.Join(dir, "nokmem-dev.pub")}
	_, err := Choose(env(map[string]string{ReleaseEnv: "1"}), dev)
	if !errors.Is(err, ErrNoReleaseKey) {
		t.Fatalf("release without %s: %v, want %v", KeyEnv, err, ErrNoReleaseKey)
	}
	if _, serr := os.Stat(dev.Secret); !errors.Is(serr, os.ErrNotExist) {
		t.Fatalf("a refused release made a development key: %v", serr)
	}
}

func TestReleaseKey(t *testing.T) {
	dir := t.TempDir()
	devSecret, devPub := pair(t, filepath.Join(dir, "dev"), "nokmem-dev")
	dev := DevPair{Secret: devSecret, Public: devPub}
	secret, pub := pair(t, dir, "release")
	k, err := Choose(env(map[string]string{ReleaseEnv: "1", KeyEnv: secret}), dev)
	if err != nil {
		t.Fatal(err)
	}
	wantID, _ := sign.KeyID(pub)
	if k.Dev || k.Secret != secret || k.Public != pub || k.ID != wantID {
		t.Fatalf("release key: got %+v, want %s / %s id %s, not Dev", k, secret, pub, wantID)
	}
}

func TestReleaseKeyPairMismatch(t *testing.T) {
	dir := t.TempDir()
	dev := DevPair{Secret: filepath.Join(dir, "none.key"), Public: filepath.Join(dir, "none.pub")}
	secret, _ := pair(t, dir, "release")
	_, otherPub := pair(t, dir, "other")
	_, err := Choose(env(map[string]string{ReleaseEnv: "1", KeyEnv: secret, PubEnv: otherPub}), dev)
	if err == nil || !strings.Contains(err.Error(), "does not pair") {
		t.Fatalf("secret and public key of different pairs: %v, want a pairing error", err)
	}
	// Outside a release the mismatch surfaces when the signature is checked; no decryption here.
	if _, err := Choose(env(map[string]string{KeyEnv: secret, PubEnv: otherPub}), dev); err != nil {
		t.Fatalf("without a release: %v", err)
	}
}

func TestEncryptedReleaseKey(t *testing.T) {
	dir := t.TempDir()
	dev := DevPair{Secret: filepath.Join(dir, "none.key"), Public: filepath.Join(dir, "none.pub")}
	pub, priv, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := minisign.EncryptKey("s3cret", priv)
	if err != nil {
		t.Fatal(err)
	}
	pubText, _ := pub.MarshalText()
	secret := filepath.Join(dir, "enc.key")
	if err := os.WriteFile(secret, enc, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(secret+".pub", pubText, 0o644); err != nil {
		t.Fatal(err)
	}
	e := env(map[string]string{ReleaseEnv: "1", KeyEnv: secret})
	// Without the password the pair cannot be checked: refused (no scrypt run).
	t.Setenv(sign.PasswordEnv, "")
	os.Unsetenv(sign.PasswordEnv)
	if _, err := Choose(e, dev); err == nil || !strings.Contains(err.Error(), sign.PasswordEnv) {
		t.Fatalf("encrypted key without %s: %v, want an error naming it", sign.PasswordEnv, err)
	}
	t.Setenv(sign.PasswordEnv, "s3cret")
	if k, err := Choose(e, dev); err != nil || k.Dev {
		t.Fatalf("encrypted release key with its password: %+v, %v", k, err)
	}
}

func TestBadReleaseValue(t *testing.T) {
	dir := t.TempDir()
	dev := DevPair{Secret: filepath.Join(dir, "d.key"), Public: filepath.Join(dir, "d.pub")}
	if _, err := Choose(env(map[string]string{ReleaseEnv: "yes"}), dev); err == nil || !strings.Contains(err.Error(), ReleaseEnv) {
		t.Fatalf("%s=yes: %v, want an error naming it", ReleaseEnv, err)
	}
}
