//go:build mage

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/magefile/mage/mg"

	"github.com/nokmem/nokmem/internal/pins"
)

// Bundle assembles the signed node bundle.
type Bundle mg.Namespace

// bundleOutput receives the default pair's bundle and its tarball (the
// node bundle of `go tool mage build`); pairsOutput the bundles of the
// other pairs that vendor-pins/matrix.yaml offers (bundle:matrix).
var (
	bundleOutput = repo.Bundle()
	pairsOutput  = repo.Bundles()
)

// defaultBundle is the default pair.
func defaultBundle() pins.Bundle { return pins.Bundle{Kubelet: kubeVersion, Runc: runcVersion} }

// bundleName is the default pair's bundle name (pipeline.PairName).
func bundleName() (string, error) { return newPipeline().BundleName(defaultBundle()) }

// Build (after release:all and verify:build, which are no-ops when up to
// date) assembles _output/bundle/<name>/ for the default pair (kubelet
// v1.12.4, runc v1.4.4) from the kubelet, runc and verify release sets
// (each checked with the public key first): the three binaries, their
// SBOMs and provenance, manifest.json, the merged vulnerability account
// (VULNERABILITIES.json and .md), SHA256SUMS, SHA512SUMS and one
// signature over SHA256SUMS; then packs it as the reproducible
// _output/bundle/<name>.tar.gz (mtime: HEAD's commit time, or
// SOURCE_DATE_EPOCH), publishes both atomically and prints the release notes.
//
// It fails, before writing anything, when runc has a known vulnerability
// without a reviewed not_affected statement (docs/security.md).
//
// With nothing changed it does no work: its record (_build/stamps/bundle)
// holds the records of the three release sets (which name every file of
// theirs), the bundle name, the source date, the signing key and the build
// tool, and the identity of the bundle folder's files and the tarball.
func (Bundle) Build(ctx context.Context) error {
	mg.SerialCtxDeps(ctx, Release.All, Verify.Build)
	pub, err := newPublisher(ctx)
	if err != nil {
		return err
	}
	return pub.BundleStep(ctx, defaultBundle())
}

// Matrix assembles, into _output/bundles/, the bundle of every other pair
// in vendor-pins/matrix.yaml's bundles: (the default pair is bundle:build's).
// It builds nothing: each version's release set must be in
// _output/<project>/<version> (the release workflow's build jobs and
// ci:releaseSets; locally `go tool mage kubelet:build <v>`, `runc:build <v>`
// and `release:write <project> <v>`), and a missing one fails, naming it.
func (Bundle) Matrix(ctx context.Context) error {
	mg.SerialCtxDeps(ctx, Verify.Build)
	m, err := pins.LoadMatrix(pinsDir)
	if err != nil {
		return err
	}
	pub, err := newPublisher(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, b := range m.Bundles {
		if b.Kubelet == kubeVersion && b.Runc == runcVersion {
			continue
		}
		if err := pub.BuildPair(ctx, b, pairsOutput, false); err != nil {
			errs = append(errs, fmt.Errorf("bundle kubelet %s + runc %s: %w", b.Kubelet, b.Runc, err))
		}
	}
	return errors.Join(errs...)
}

// headCommitTime is HEAD's commit time in seconds, asked of git once per
// run (every step's publisher needs it).
var headCommitTime = sync.OnceValues(func() (string, error) {
	out, err := exec.Command("git", "log", "-1", "--format=%ct", "HEAD").Output()
	if err != nil {
		return "", fmt.Errorf("bundle: commit time of HEAD: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
})

// sourceDate is SOURCE_DATE_EPOCH when set, else HEAD's commit time.
func sourceDate() (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		var err error
		if s, err = headCommitTime(); err != nil {
			return time.Time{}, err
		}
	}
	sec, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("bundle: source date %q: %w", s, err)
	}
	return time.Unix(sec, 0).UTC(), nil
}
