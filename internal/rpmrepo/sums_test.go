package rpmrepo

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/nokmem/nokmem/internal/release/gpgsign"
	"github.com/nokmem/nokmem/internal/release/sign"
	"github.com/nokmem/nokmem/internal/release/signkey"
	"github.com/nokmem/nokmem/internal/testenv"
)

// published is a repository Publish wrote in a test, from packages built
// by this package (the code under test, not _output).
type published struct {
	dir, pub string
	rpms     []string
	gpg      *gpgsign.Key
}

// devGPG is the committed development OpenPGP key.
func devGPG(t *testing.T) *gpgsign.Key {
	t.Helper()
	k, err := signkey.DevGPG()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// otherGPG is another RSA 4096 key (internal/release/gpgsign/testdata).
func otherGPG(t *testing.T) *gpgsign.Key {
	t.Helper()
	name := filepath.Join("..", "release", "gpgsign", "testdata", "other-rsa4096.asc")
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	k, err := gpgsign.Read(name, data, nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// publishTest publishes pkgs with Publish into a fresh folder, signed with
// the development OpenPGP key and a fresh minisign key.
func publishTest(t *testing.T, pkgs ...*Package) published {
	t.Helper()
	testenv.RequireCommand(t, "createrepo_c")
	dir := t.TempDir()
	key, pub := filepath.Join(dir, "k"), filepath.Join(dir, "k.pub")
	if err := sign.GenerateKey(key, pub); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(dir, "yum")
	gpg := devGPG(t)
	p, err := Publish(context.Background(), dest, pkgs, Options{Key: key, Pub: pub, GPG: gpg, BaseURL: "file://" + dest, SourceDate: when})
	if err != nil {
		t.Fatal(err)
	}
	return published{dir: dest, pub: pub, rpms: p.RPMs, gpg: gpg}
}
