package install

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/nokmem/nokmem/internal/atomicfile"
	"github.com/nokmem/nokmem/internal/bundle"
	"github.com/nokmem/nokmem/internal/release/sign"
	"github.com/nokmem/nokmem/verify/binary"
)

// Opened is a checked bundle ready to install.
type Opened struct {
	Dir      string
	Source   string
	Manifest *bundle.Manifest
	// Signed, KeyID and SignatureSkipped say how it was checked.
	Signed           bool
	KeyID            string
	SignatureSkipped bool
	// Warnings are lines the operator must see (skipped signature, development key).
	Warnings []string
	cleanup  string
}

// Close removes the folder a tarball was unpacked into.
func (b *Opened) Close() error {
	if b.cleanup == "" {
		return nil
	}
	return os.RemoveAll(b.cleanup)
}

// ErrNoKey means no public key was found and the signature was not waived.
var ErrNoKey = errors.New("no release public key")

// Open checks the bundle at source (a bundle folder or its .tar.gz, which
// is unpacked under tmpParent first) with the minisign public key pubKey
// (DefaultPubKey when ""). The unpacked folder is named with
// atomicfile.TempPrefix, and what a killed run left in tmpParent is swept
// first. skipSignature checks everything but the
// signature and says so in Warnings.
func Open(source, pubKey string, skipSignature bool, tmpParent string) (*Opened, error) {
	fi, err := os.Stat(source)
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	b := &Opened{Dir: source, Source: source}
	if !fi.IsDir() {
		// What a killed run left here goes first.
		if _, err := atomicfile.Sweep(tmpParent); err != nil {
			return nil, fmt.Errorf("bundle: %w", err)
		}
		tmp, err := os.MkdirTemp(tmpParent, atomicfile.TempPattern("bundle"))
		if err != nil {
			return nil, fmt.Errorf("bundle: %w", err)
		}
		b.cleanup = tmp
		if b.Dir, err = bundle.Unpack(source, tmp); err != nil {
			b.Close()
			return nil, err
		}
		if err := fault("unpacked"); err != nil {
			b.Close()
			return nil, err
		}
	}
	if skipSignature {
		b.SignatureSkipped = true
		b.Warnings = append(b.Warnings, "WARNING: the bundle's signature was NOT checked (skipped on request); anyone who could write "+source+" chose these binaries. This is recorded in "+RecordFile+" and reported by every detect.")
		b.Manifest, err = bundle.VerifyUnsigned(b.Dir)
	} else {
		if pubKey == "" {
			pubKey = DefaultPubKey
		}
		if _, serr := os.Stat(pubKey); errors.Is(serr, fs.ErrNotExist) {
			b.Close()
			return nil, fmt.Errorf("%w at %s: copy the release public key there", ErrNoKey, pubKey)
		}
		b.Manifest, err = bundle.Verify(b.Dir, pubKey)
		if err == nil {
			b.Signed = true
			b.KeyID, err = sign.KeyID(pubKey)
		}
	}
	if err != nil {
		b.Close()
		return nil, err
	}
	if b.Manifest.SigningKey.Development {
		b.Warnings = append(b.Warnings, bundle.DevKeyWarning(b.Manifest.SigningKey.ID))
	}
	return b, nil
}

// Targets maps the bundle's binaries to the node: each name a binary
// replaces (kubelet; runc and docker-runc) is looked up in paths, then in
// dirs; a name not found is left out unless create names a path with that
// base name, which is then created.
func (b *Opened) Targets(paths map[string]string, dirs []string, create []string) ([]Target, error) {
	if dirs == nil {
		dirs = binary.DefaultSearchDirs
	}
	var ts []Target
	used := map[string]bool{}
	for _, bin := range b.Manifest.Binaries {
		for _, node := range bin.Replaces {
			p := paths[node]
			if p == "" {
				p = binary.Search(node, dirs)
			}
			t := Target{Name: bin.Name, Path: p}
			if p == "" {
				for _, c := range create {
					if filepath.Base(c) == node {
						t.Path, t.Create = c, true
						used[c] = true
					}
				}
			}
			if t.Path != "" {
				ts = append(ts, t)
			}
		}
	}
	for _, c := range create {
		if !used[c] {
			if !slices.ContainsFunc(ts, func(t Target) bool { return t.Path == c }) {
				return nil, fmt.Errorf("cannot create %s: no binary of the bundle replaces a %q (or one is already installed)", c, filepath.Base(c))
			}
		}
	}
	return ts, nil
}

// Options returns install options for this bundle.
func (b *Opened) Options() Options {
	return Options{Dir: b.Dir, Manifest: b.Manifest, Source: b.Source, Signed: b.Signed, SignatureSkipped: b.SignatureSkipped, KeyID: b.KeyID}
}
