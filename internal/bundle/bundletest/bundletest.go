// Package bundletest makes small signed node bundles for tests: real
// release sets (internal/release) around given binary contents, assembled
// and signed by internal/bundle with a fresh key.
package bundletest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/nokmem/nokmem/internal/bundle"
	"github.com/nokmem/nokmem/internal/release"
	"github.com/nokmem/nokmem/internal/release/inputs/inputstest"
	"github.com/nokmem/nokmem/internal/release/sign"
)

// Fixture is a signed bundle and its keys.
type Fixture struct {
	Dir      string // the bundle folder
	Key, Pub string // minisign secret and public key files
	Manifest *bundle.Manifest
}

// Kubelet, Runc and Verify are the default contents of the fixture's binaries.
const (
	Kubelet = "#!/bin/sh\necho 'Kubernetes v1.12.4+nokmem.test'\n"
	Runc    = "#!/bin/sh\necho 'runc version 1.0.0-rc5+nokmem.test'\n"
	Verify  = "#!/bin/sh\necho verify\n"
)

// Make writes a bundle named name under t.TempDir() holding kubelet, runc
// and verify with the given contents ("" for the defaults), and the bundle
// files, signed with a new key pair.
func Make(t testing.TB, name string, kubelet, runc string, files ...bundle.File) *Fixture {
	t.Helper()
	return MakeVersions(t, name, kubelet, "", runc, "", files...)
}

// MakeVersions is Make with the versions the manifest gives the kubelet
// and runc ("" for the default pair's, v1.12.4 and v1.0.0-rc5 with
// +nokmem.test).
func MakeVersions(t testing.TB, name string, kubelet, kubeletVersion, runc, runcVersion string, files ...bundle.File) *Fixture {
	t.Helper()
	if kubeletVersion == "" {
		kubeletVersion = "v1.12.4+nokmem.test"
	}
	if runcVersion == "" {
		runcVersion = "v1.0.0-rc5+nokmem.test"
	}
	if kubelet == "" {
		kubelet = Kubelet
	}
	if runc == "" {
		runc = Runc
	}
	tmp := t.TempDir()
	f := &Fixture{Key: filepath.Join(tmp, "key"), Pub: filepath.Join(tmp, "key.pub"), Dir: filepath.Join(tmp, name)}
	if err := sign.GenerateKey(f.Key, f.Pub); err != nil {
		t.Fatal(err)
	}
	var parts []bundle.Part
	for _, b := range []struct {
		name, content, project, version string
		replaces                        []string
	}{
		// The default pair's versions, as `go tool mage build` writes them
		// (install's version guard compares the node's binaries with them).
		{"kubelet", kubelet, "kubernetes", kubeletVersion, []string{"kubelet"}},
		{"runc", runc, "runc", runcVersion, []string{"runc", "docker-runc"}},
		{"verify", Verify, "nokmem", "v0.0.0+test", nil},
	} {
		dir := filepath.Join(tmp, "release-"+b.name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, b.name), []byte(b.content), 0o755); err != nil {
			t.Fatal(err)
		}
		in := inputstest.Runc()
		in.Name = b.name
		if err := release.Write(dir, in, []string{b.name}, f.Key); err != nil {
			t.Fatal(err)
		}
		parts = append(parts, bundle.Part{Dir: dir, Binary: bundle.Binary{Name: b.name, Project: b.project, Version: b.version, Replaces: b.replaces}})
	}
	m, err := bundle.Assemble(f.Dir, name, parts, f.Key, f.Pub, false, files...)
	if err != nil {
		t.Fatal(err)
	}
	f.Manifest = m
	return f
}
