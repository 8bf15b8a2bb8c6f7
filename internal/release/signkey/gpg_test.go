package signkey

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// Without a key: the committed development key, marked Dev. A release
// refuses a missing key and the development key (a copy of its file), and
// takes another RSA 4096 key.
func TestChooseGPG(t *testing.T) {
	k, err := ChooseGPG(env(nil))
	if err != nil || !k.Dev || k.Fingerprint() != DevGPGFingerprint {
		t.Fatalf("no key: %+v, %v; want the development key", k, err)
	}
	if _, err := ChooseGPG(env(map[string]string{ReleaseEnv: "1"})); !errors.Is(err, ErrNoReleaseKey) {
		t.Errorf("release without %s: %v, want ErrNoReleaseKey", GPGKeyEnv, err)
	}
	dir := t.TempDir()
	devCopy := filepath.Join(dir, "copy.asc")
	if err := os.WriteFile(devCopy, devGPG, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ChooseGPG(env(map[string]string{ReleaseEnv: "1", GPGKeyEnv: devCopy})); !errors.Is(err, ErrDevKey) {
		t.Errorf("release with a copy of the development key: %v, want ErrDevKey", err)
	}
	if k, err := ChooseGPG(env(map[string]string{GPGKeyEnv: devCopy})); err != nil || !k.Dev {
		t.Errorf("the development key by path outside a release: %+v, %v; want it marked Dev", k, err)
	}
	other := filepath.Join("..", "gpgsign", "testdata", "other-rsa4096.asc")
	k, err = ChooseGPG(env(map[string]string{ReleaseEnv: "1", GPGKeyEnv: other}))
	if err != nil || k.Dev || k.Source != other {
		t.Errorf("release with another key: %+v, %v", k, err)
	}
	if _, err := ChooseGPG(env(map[string]string{ReleaseEnv: "1", GPGKeyEnv: filepath.Join(dir, "missing.asc")})); err == nil {
		t.Error("a missing key file was accepted")
	}
}
