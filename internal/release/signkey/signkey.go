// Package signkey chooses the minisign key that signs the release sets,
// bundles and yum repository: a release key from the environment, or, for
// development, a key pair made once on the build machine. When a release is
// requested (NOKMEM_RELEASE=1, set by the release workflow) it refuses the
// development key and a missing release key instead of falling back.
package signkey

import (
	"errors"
	"fmt"
	"os"

	"github.com/nokmem/nokmem/internal/release/sign"
)

// Environment variables read by Choose.
const (
	// KeyEnv is the path of the minisign secret key file (its password, when
	// encrypted, is in sign.PasswordEnv).
	KeyEnv = "NOKMEM_SIGNING_KEY"
	// PubEnv is the path of its public key file (default: <key>.pub).
	PubEnv = "NOKMEM_SIGNING_PUB"
	// ReleaseEnv set to 1 asks for a release signature: the development key
	// is refused.
	ReleaseEnv = "NOKMEM_RELEASE"
)

// ErrDevKey is returned when a release would be signed with the development key.
var ErrDevKey = errors.New("refusing to sign a release with the development key")

// ErrNoReleaseKey is returned when a release is requested without a key.
var ErrNoReleaseKey = errors.New("a release needs a release key")

// Key is the chosen key pair.
type Key struct {
	Secret, Public string // file paths
	ID             string // minisign key id (16 upper-case hex digits)
	Dev            bool   // the development key
}

// DevPair names the development key pair's files.
type DevPair struct{ Secret, Public string }

// Choose returns the signing key named by getenv (os.Getenv in the build):
//   - with KeyEnv set, that key; it is marked Dev when it is the
//     development key (same file, or the same key id as dev.Public);
//   - without it, the development pair, made first when dev.Secret does not
//     exist.
//
// With ReleaseEnv=1 the second case fails with ErrNoReleaseKey, a key that
// is the development key fails with ErrDevKey, and the secret key must be
// the pair of the public key (compared by key id, which needs the password
// of an encrypted key). Any other ReleaseEnv value than "", "0" or "1" is an error.
func Choose(getenv func(string) string, dev DevPair) (Key, error) {
	release, err := releaseRequested(getenv(ReleaseEnv))
	if err != nil {
		return Key{}, err
	}
	secret := getenv(KeyEnv)
	if secret == "" {
		if release {
			return Key{}, fmt.Errorf("%s=1: %w: set %s to the minisign secret key file (the development key %s is never used for a release)",
				ReleaseEnv, ErrNoReleaseKey, KeyEnv, dev.Secret)
		}
		if _, err := os.Stat(dev.Secret); errors.Is(err, os.ErrNotExist) {
			if err := sign.GenerateKey(dev.Secret, dev.Public); err != nil {
				return Key{}, err
			}
		}
		id, err := sign.KeyID(dev.Public)
		if err != nil {
			return Key{}, fmt.Errorf("development key: %w", err)
		}
		return Key{Secret: dev.Secret, Public: dev.Public, ID: id, Dev: true}, nil
	}
	pub := getenv(PubEnv)
	if pub == "" {
		pub = secret + ".pub"
	}
	id, err := sign.KeyID(pub)
	if err != nil {
		return Key{}, fmt.Errorf("signing key from %s: %w", KeyEnv, err)
	}
	k := Key{Secret: secret, Public: pub, ID: id}
	if k.Dev, err = isDev(k, dev); err != nil {
		return Key{}, err
	}
	if !release {
		return k, nil
	}
	if k.Dev {
		return Key{}, fmt.Errorf("%s=1: %w: %s (key id %s) is the development key %s; sign with the release key",
			ReleaseEnv, ErrDevKey, secret, id, dev.Secret)
	}
	secretID, err := sign.SecretKeyID(secret)
	if err != nil {
		return Key{}, fmt.Errorf("%s=1: %w", ReleaseEnv, err)
	}
	if secretID != id {
		return Key{}, fmt.Errorf("%s=1: secret key %s (key id %s) does not pair with public key %s (key id %s)",
			ReleaseEnv, secret, secretID, pub, id)
	}
	return k, nil
}

// isDev reports whether k is the development key: the same secret key file,
// or a public key with the development key's id (a copy of it elsewhere).
func isDev(k Key, dev DevPair) (bool, error) {
	if same, err := sameFile(k.Secret, dev.Secret); err != nil || same {
		return same, err
	}
	if _, err := os.Stat(dev.Public); errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	devID, err := sign.KeyID(dev.Public)
	if err != nil {
		return false, fmt.Errorf("development key: %w", err)
	}
	return devID == k.ID, nil
}

// sameFile reports whether a and b are the same existing file; a missing b is not an error.
func sameFile(a, b string) (bool, error) {
	fb, err := os.Stat(b)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("development key: %w", err)
	}
	fa, err := os.Stat(a)
	if err != nil {
		return false, fmt.Errorf("signing key from %s: %w", KeyEnv, err)
	}
	return os.SameFile(fa, fb), nil
}

// releaseRequested parses ReleaseEnv.
func releaseRequested(v string) (bool, error) {
	switch v {
	case "", "0":
		return false, nil
	case "1":
		return true, nil
	}
	return false, fmt.Errorf("%s=%q: want 1 (release) or 0", ReleaseEnv, v)
}
