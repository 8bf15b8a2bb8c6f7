// Package gpgsign makes the OpenPGP signatures a yum node checks: V4 RSA
// signatures over an RPM's header and over header plus payload (rpmpack's
// signer, the RSAHEADER and PGP tags that `rpmsign --addsign` writes) and
// the armored detached signature of repodata/repomd.xml (repomd.xml.asc,
// read by yum and dnf with repo_gpgcheck=1). CentOS 7's rpm 4.11 reads V3
// and V4 signatures made with RSA or DSA keys only, so keys are RSA and
// signatures V4; the signature time is the build's source date and the
// salt notation of github.com/ProtonMail/go-crypto is off, so the same
// inputs give the same signed bytes (RSA PKCS#1 v1.5 is deterministic).
package gpgsign

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// MinRSABits is the smallest RSA key Read accepts.
const MinRSABits = 4096

// Key is an RSA signing key (primary key; no subkeys are used).
type Key struct {
	e *openpgp.Entity
}

// Generate makes a V4 RSA key of bits for uid (e.g. "nokmem release
// <release@example.com>") made at t.
func Generate(name, email string, bits int, t time.Time) (*Key, error) {
	cfg := &packet.Config{Algorithm: packet.PubKeyAlgoRSA, RSABits: bits, DefaultHash: crypto.SHA256,
		Time: func() time.Time { return t }, KeyLifetimeSecs: 0}
	e, err := openpgp.NewEntity(name, "", email, cfg)
	if err != nil {
		return nil, fmt.Errorf("gpg key: %w", err)
	}
	return &Key{e: e}, nil
}

// Read parses an armored secret key (the first key of the block),
// decrypting it with password when it is encrypted. It refuses a key that
// is not RSA or has fewer than MinRSABits, which CentOS 7's rpm or current
// policy would not accept. name names the key's source in errors.
func Read(name string, armored []byte, password []byte) (*Key, error) {
	list, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(armored))
	if err != nil {
		return nil, fmt.Errorf("gpg key %s: %w", name, err)
	}
	if len(list) != 1 {
		return nil, fmt.Errorf("gpg key %s: %d keys, want exactly one", name, len(list))
	}
	e := list[0]
	pk := e.PrivateKey
	if pk == nil {
		return nil, fmt.Errorf("gpg key %s: a public key, want the secret key", name)
	}
	if e.PrimaryKey.PubKeyAlgo != packet.PubKeyAlgoRSA && e.PrimaryKey.PubKeyAlgo != packet.PubKeyAlgoRSASignOnly {
		return nil, fmt.Errorf("gpg key %s: algorithm %d, want RSA (CentOS 7's rpm 4.11 verifies RSA and DSA only)", name, e.PrimaryKey.PubKeyAlgo)
	}
	if e.PrimaryKey.Version != 4 {
		return nil, fmt.Errorf("gpg key %s: a version %d key, want version 4 (V4 signatures)", name, e.PrimaryKey.Version)
	}
	bits, err := e.PrimaryKey.BitLength()
	if err != nil {
		return nil, fmt.Errorf("gpg key %s: %w", name, err)
	}
	if bits < MinRSABits {
		return nil, fmt.Errorf("gpg key %s: RSA %d bits, want at least %d", name, bits, MinRSABits)
	}
	if pk.Encrypted {
		if len(password) == 0 {
			return nil, fmt.Errorf("gpg key %s is encrypted and no password was given", name)
		}
		if err := pk.Decrypt(password); err != nil {
			return nil, fmt.Errorf("gpg key %s: %w", name, err)
		}
	}
	return &Key{e: e}, nil
}

// Fingerprint is the key's V4 fingerprint, 40 upper-case hex digits.
func (k *Key) Fingerprint() string { return fmt.Sprintf("%X", k.e.PrimaryKey.Fingerprint) }

// KeyID is the long key id, 16 lower-case hex digits (as `rpm -Kv` prints it).
func (k *Key) KeyID() string { return fmt.Sprintf("%016x", k.e.PrimaryKey.KeyId) }

// Public is the armored public key, the file a node imports
// (/etc/pki/rpm-gpg/RPM-GPG-KEY-nokmem, gpgkey= of the .repo file).
func (k *Key) Public() ([]byte, error) {
	return k.armor(openpgp.PublicKeyType, k.e.Serialize)
}

// Secret is the armored secret key, unencrypted (to store a key made with Generate).
func (k *Key) Secret() ([]byte, error) {
	return k.armor(openpgp.PrivateKeyType, func(w io.Writer) error { return k.e.SerializePrivate(w, nil) })
}

func (k *Key) armor(kind string, write func(io.Writer) error) ([]byte, error) {
	var b bytes.Buffer
	w, err := armor.Encode(&b, kind, nil)
	if err != nil {
		return nil, err
	}
	if err := write(w); err != nil {
		return nil, fmt.Errorf("gpg key: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

// config signs at t, or at the key's creation when t is earlier (a source
// date older than the key): still the same bytes for the same inputs.
func (k *Key) config(t time.Time) *packet.Config {
	if c := k.e.PrimaryKey.CreationTime; t.Before(c) {
		t = c
	}
	no := false
	return &packet.Config{DefaultHash: crypto.SHA256, Time: func() time.Time { return t }, NonDeterministicSignaturesViaNotation: &no}
}

// Sign returns a binary detached V4 signature of data made at t.
func (k *Key) Sign(data []byte, t time.Time) ([]byte, error) {
	var b bytes.Buffer
	if err := openpgp.DetachSign(&b, k.e, bytes.NewReader(data), k.config(t)); err != nil {
		return nil, fmt.Errorf("gpg sign: %w", err)
	}
	return b.Bytes(), nil
}

// ArmoredSign returns an armored detached V4 signature of data made at t
// (repomd.xml.asc).
func (k *Key) ArmoredSign(data []byte, t time.Time) ([]byte, error) {
	var b bytes.Buffer
	if err := openpgp.ArmoredDetachSign(&b, k.e, bytes.NewReader(data), k.config(t)); err != nil {
		return nil, fmt.Errorf("gpg sign: %w", err)
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

// RPMSigner is the function rpmpack's SetPGPSigner takes: signatures made at t.
func (k *Key) RPMSigner(t time.Time) func([]byte) ([]byte, error) {
	return func(data []byte) ([]byte, error) { return k.Sign(data, t) }
}

// ErrBadSignature is returned (wrapped) when a signature does not verify.
var ErrBadSignature = errors.New("bad OpenPGP signature")

// VerifyArmored checks an armored detached signature of data with the
// armored public key pub; what names the signed file in errors.
func VerifyArmored(what string, pub, data, sig []byte) error {
	ring, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(pub))
	if err != nil {
		return fmt.Errorf("public key for %s: %w", what, err)
	}
	if _, err := openpgp.CheckArmoredDetachedSignature(ring, bytes.NewReader(data), bytes.NewReader(sig), nil); err != nil {
		return fmt.Errorf("%s: %w: %v", what, ErrBadSignature, strings.TrimSpace(err.Error()))
	}
	return nil
}
