package signkey

import (
	_ "embed"
	"fmt"
	"os"

	"github.com/nokmem/nokmem/internal/release/gpgsign"
)

// Environment variables read by ChooseGPG.
const (
	// GPGKeyEnv is the path of the armored OpenPGP secret key (RSA, at least
	// 4096 bits) that signs the RPMs and repodata/repomd.xml.
	GPGKeyEnv = "NOKMEM_RPM_GPG_KEY"
	// GPGPasswordEnv is its password, when it is encrypted.
	GPGPasswordEnv = "NOKMEM_RPM_GPG_PASSWORD"
)

// devGPG is the development OpenPGP key (RSA 4096, committed, public to
// anyone who reads this repository): it signs development builds only.
//
//go:embed nokmem-dev-rpm-gpg.asc
var devGPG []byte

// DevGPGFingerprint is the development key's fingerprint.
const DevGPGFingerprint = "E5882D59718B39885332E0182D236ADCAD5C793F"

// GPGKey is the chosen OpenPGP key.
type GPGKey struct {
	*gpgsign.Key
	// Source is the key file, or "development key".
	Source string
	Dev    bool
}

// DevGPG returns the development OpenPGP key.
func DevGPG() (*gpgsign.Key, error) {
	return gpgsign.Read("development key", devGPG, nil)
}

// ChooseGPG returns the OpenPGP key named by getenv: the key file at
// GPGKeyEnv, or the development key without it. With ReleaseEnv=1 a missing
// key fails with ErrNoReleaseKey and the development key (also a copy of
// it) with ErrDevKey.
func ChooseGPG(getenv func(string) string) (GPGKey, error) {
	release, err := releaseRequested(getenv(ReleaseEnv))
	if err != nil {
		return GPGKey{}, err
	}
	path := getenv(GPGKeyEnv)
	if path == "" {
		if release {
			return GPGKey{}, fmt.Errorf("%s=1: %w: set %s to the armored OpenPGP secret key file (the committed development key %s is never used for a release)",
				ReleaseEnv, ErrNoReleaseKey, GPGKeyEnv, DevGPGFingerprint)
		}
		k, err := DevGPG()
		if err != nil {
			return GPGKey{}, err
		}
		return GPGKey{Key: k, Source: "development key", Dev: true}, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return GPGKey{}, fmt.Errorf("%s: %w", GPGKeyEnv, err)
	}
	k, err := gpgsign.Read(path, data, []byte(getenv(GPGPasswordEnv)))
	if err != nil {
		return GPGKey{}, err
	}
	g := GPGKey{Key: k, Source: path, Dev: k.Fingerprint() == DevGPGFingerprint}
	if release && g.Dev {
		return GPGKey{}, fmt.Errorf("%s=1: %w: %s (fingerprint %s) is the development OpenPGP key; sign with the release key",
			ReleaseEnv, ErrDevKey, path, g.Fingerprint())
	}
	return g, nil
}
