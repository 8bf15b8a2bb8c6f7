// Package sign makes and checks detached minisign signatures
// (https://jedisct1.github.io/minisign/) with keys read from files, offline.
// The files are the ones the minisign tool reads and writes, so a release
// can also be checked with `minisign -Vm SHA256SUMS -p key.pub`.
package sign

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"aead.dev/minisign"
)

// Ext is the signature file's suffix.
const Ext = ".minisig"

// PasswordEnv names the environment variable that holds the password of an
// encrypted secret key; unencrypted keys need none.
const PasswordEnv = "NOKMEM_SIGNING_PASSWORD"

// ErrBadSignature is returned when a signature does not verify.
var ErrBadSignature = errors.New("signature does not verify")

// GenerateKey writes a new unencrypted key pair to secretPath (mode 0600) and
// publicPath. It refuses to overwrite an existing secret key.
func GenerateKey(secretPath, publicPath string) error {
	pub, priv, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("generate signing key: %w", err)
	}
	privText, err := priv.MarshalText()
	if err != nil {
		return fmt.Errorf("encode secret key: %w", err)
	}
	pubText, err := pub.MarshalText()
	if err != nil {
		return fmt.Errorf("encode public key: %w", err)
	}
	for _, p := range []string{secretPath, publicPath} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("signing key folder: %w", err)
		}
	}
	f, err := os.OpenFile(secretPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write secret key: %w", err)
	}
	if _, err := f.Write(append(privText, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("write secret key %s: %w", secretPath, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write secret key %s: %w", secretPath, err)
	}
	if err := os.WriteFile(publicPath, append(pubText, '\n'), 0o644); err != nil {
		return fmt.Errorf("write public key: %w", err)
	}
	return nil
}

// readSecret reads a secret key file, decrypting it with $NOKMEM_SIGNING_PASSWORD when it is encrypted.
func readSecret(path string) (minisign.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return minisign.PrivateKey{}, fmt.Errorf("read signing key: %w", err)
	}
	var key minisign.PrivateKey
	if minisign.IsEncrypted(data) {
		pw, ok := os.LookupEnv(PasswordEnv)
		if !ok {
			return key, fmt.Errorf("signing key %s is encrypted and %s is not set", path, PasswordEnv)
		}
		key, err = minisign.DecryptKey(pw, data)
	} else {
		err = key.UnmarshalText(data)
	}
	if err != nil {
		return key, fmt.Errorf("signing key %s: %w", path, err)
	}
	return key, nil
}

// File signs the file at path with the secret key at keyPath and writes the
// signature to path+Ext. The trusted comment names the file, so the
// signature is the same every time the same bytes are signed.
func File(path, keyPath string) error {
	key, err := readSecret(keyPath)
	if err != nil {
		return err
	}
	msg, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	sig := minisign.SignWithComments(key, msg, "file:"+filepath.Base(path), "signature from nokmem release key")
	if err := os.WriteFile(path+Ext, sig, 0o644); err != nil {
		return fmt.Errorf("write signature: %w", err)
	}
	return nil
}

// Verify checks path+Ext against the file at path with the public key at pubKeyPath.
func Verify(path, pubKeyPath string) error {
	pub, err := minisign.PublicKeyFromFile(pubKeyPath)
	if err != nil {
		return fmt.Errorf("read public key %s: %w", pubKeyPath, err)
	}
	msg, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("verify signature: %w", err)
	}
	sig, err := os.ReadFile(path + Ext)
	if err != nil {
		return fmt.Errorf("verify signature: %w", err)
	}
	if !minisign.Verify(pub, msg, sig) {
		return fmt.Errorf("%s%s over %s with key %s: %w", path, Ext, path, pubKeyPath, ErrBadSignature)
	}
	return nil
}

// KeyID returns the minisign key id of the public key at pubKeyPath, as
// minisign prints it (16 upper-case hex digits).
func KeyID(pubKeyPath string) (string, error) {
	pub, err := minisign.PublicKeyFromFile(pubKeyPath)
	if err != nil {
		return "", fmt.Errorf("read public key %s: %w", pubKeyPath, err)
	}
	return fmt.Sprintf("%016X", pub.ID()), nil
}

// SecretKeyID returns the minisign key id of the secret key at keyPath
// (decrypted with $NOKMEM_SIGNING_PASSWORD when encrypted), so a secret key
// can be matched with a public key before anything is signed.
func SecretKeyID(keyPath string) (string, error) {
	key, err := readSecret(keyPath)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%016X", key.ID()), nil
}
