//go:build mage

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/magefile/mage/mg"

	"github.com/nokmem/nokmem/internal/release"
	"github.com/nokmem/nokmem/internal/release/signkey"
)

// Release writes and checks the release set (checksums, SBOM, provenance,
// signature) of every artifact directory.
type Release mg.Namespace

// Signing key: a release key from NOKMEM_SIGNING_KEY (NOKMEM_SIGNING_PUB,
// NOKMEM_SIGNING_PASSWORD), else a development key pair made once under
// _build/release-key whose public key is copied to _output/nokmem-release.pub:
// good for checking the set's integrity, not for trusting its origin. With
// NOKMEM_RELEASE=1 the development key is refused (internal/release/signkey).
var (
	devKey = repo.DevKey()
	devPub = repo.DevPub()
)

// defaultArtifacts are the project versions whose artifact directories
// _output/<project>/<version> get a release set: the default pair.
var defaultArtifacts = []struct{ project, version string }{
	{kubeProject, kubeVersion},
	{"runc", runcVersion},
}

// All builds the default artifacts (kubelet, then runc; each a no-op when
// its inputs are unchanged), writes the release set of every artifact
// directory and checks each set with Verify. With NOKMEM_PREBUILT=1 it
// builds nothing: the artifacts must already be in _output, built from the
// current inputs (the release workflow's bundle job downloads them).
func (Release) All(ctx context.Context) error {
	pre, err := prebuilt()
	if err != nil {
		return err
	}
	if pre {
		var errs []error
		for _, a := range defaultArtifacts {
			errs = append(errs, checkPrebuilt(ctx, a.project, a.version))
		}
		if err := errors.Join(errs...); err != nil {
			return err
		}
	} else {
		mg.SerialCtxDeps(ctx, mg.F(Kubelet.Build, kubeVersion), mg.F(Runc.Build, runcVersion))
	}
	pub, err := newPublisher(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, a := range defaultArtifacts {
		if err := pub.ReleaseStep(ctx, a.project, a.version); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return pub.PublishPublicKey()
}

// Write writes the release set of _output/<project>/<version> and checks it.
func (Release) Write(ctx context.Context, project, version string) error {
	pub, err := newPublisher(ctx)
	if err != nil {
		return err
	}
	return pub.WriteRelease(ctx, project, version)
}

// Verify checks the release set in dir against the minisign public key at pub.
func (Release) Verify(dir, pub string) error {
	if err := release.Verify(dir, pub); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "release %s: signature, checksums, SBOM and provenance check out\n", dir)
	return nil
}

// releaseKey chooses the signing key from the environment
// (signkey.Choose): the development key pair, made on first use, unless
// NOKMEM_SIGNING_KEY names a key; refused when NOKMEM_RELEASE=1.
func releaseKey() (signkey.Key, error) {
	k, err := signkey.Choose(os.Getenv, signkey.DevPair{Secret: devKey, Public: devPub})
	if err != nil {
		return k, err
	}
	if k.Dev {
		slog.Warn("signing with the development key; set "+signkey.KeyEnv+" to sign with a release key", "key", k.Secret, "id", k.ID)
	}
	return k, nil
}
