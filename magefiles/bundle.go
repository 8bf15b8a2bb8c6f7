//go:build mage

package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/magefile/mage/mg"

	"github.com/nokmem/nokmem/internal/bundle"
	"github.com/nokmem/nokmem/internal/patchset"
	"github.com/nokmem/nokmem/internal/pins"
	"github.com/nokmem/nokmem/internal/publish"
	"github.com/nokmem/nokmem/internal/release/sums"
	"github.com/nokmem/nokmem/internal/stepstamp"
	"github.com/nokmem/nokmem/internal/vulndb"
)

// Bundle assembles the signed node bundle.
type Bundle mg.Namespace

// bundleOutput receives the default pair's bundle and its tarball (the
// node bundle of `go tool mage build`); pairsOutput the bundles of the
// other pairs that vendor-pins/matrix.yaml offers (bundle:matrix).
var (
	bundleOutput = filepath.Join("_output", "bundle")
	pairsOutput  = filepath.Join("_output", "bundles")
)

// vulnerableMarker ends the kubelet/runc part of the name of a bundle
// that pairs a version matrix.yaml marks vulnerable.
const vulnerableMarker = "-vulnerable"

// pairName is nokmem-<kubelet version>-<runc version>[-vulnerable]+<marker>,
// the marker being nokmem. and 12 hex digits of the sha256 of both fix
// markers (patch set or build tag), so it changes whenever either fix does;
// -vulnerable when the matrix marks either version vulnerable.
func pairName(m *pins.Matrix, kubelet, runc string, kubeSet, runcSet *patchset.Set) string {
	h := sha256.Sum256([]byte(kubeSet.Marker() + "\n" + runcSet.Marker()))
	label := runc
	if m.Vulnerable(pins.Bundle{Kubelet: kubelet, Runc: runc}) {
		label += vulnerableMarker
	}
	return bundle.Name(kubelet, label, patchset.MarkerPrefix+hex.EncodeToString(h[:])[:12])
}

// bundleName is the default pair's bundle name (see pairName).
func bundleName() (string, error) {
	m, err := pins.LoadMatrix(pinsDir)
	if err != nil {
		return "", err
	}
	p := newPipeline()
	_, kubeSet, err := p.Load(kubeProject, kubeVersion)
	if err != nil {
		return "", err
	}
	_, runcSet, err := p.Load("runc", runcVersion)
	if err != nil {
		return "", err
	}
	return pairName(m, kubeVersion, runcVersion, kubeSet, runcSet), nil
}

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
	in, err := stepInputsAfter(ctx, map[string]string{
		"release kubelet": repo.Record("release-" + kubeProject + "-" + kubeVersion),
		"release runc":    repo.Record("release-runc-" + runcVersion),
		"verify":          verifyRecord,
	})
	if err != nil {
		return err
	}
	name, err := bundleName()
	if err != nil {
		return err
	}
	in.Add("bundle name", []byte(name))
	s := &stepstamp.Step{Name: "bundle " + name, File: bundleRecord, Inputs: in,
		Outputs: []string{filepath.Join(bundleOutput, name), filepath.Join(bundleOutput, name+bundle.TarExt)}}
	return runStep(s, func() error { return buildPair(ctx, kubeVersion, runcVersion, bundleOutput, true) })
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
	var errs []error
	for _, b := range m.Bundles {
		if b.Kubelet == kubeVersion && b.Runc == runcVersion {
			continue
		}
		if err := buildPair(ctx, b.Kubelet, b.Runc, pairsOutput, false); err != nil {
			errs = append(errs, fmt.Errorf("bundle kubelet %s + runc %s: %w", b.Kubelet, b.Runc, err))
		}
	}
	return errors.Join(errs...)
}

// buildPair assembles, checks, packs and publishes into out the bundle of
// kubelet and runc (versions of the matrix) with the published verify,
// and the merged vulnerability account of the three. gate (the default
// bundle) refuses a runc with a finding that has no reviewed not_affected
// statement, before anything is written.
func buildPair(ctx context.Context, kubelet, runc, out string, gate bool) error {
	start := time.Now()
	k, err := releaseKey()
	if err != nil {
		return err
	}
	key, pub := k.Secret, k.Public
	verifyVersion, err := publishedVersion()
	if err != nil {
		return fmt.Errorf("bundle: build verify first: %w", err)
	}
	matrix, err := pins.LoadMatrix(pinsDir)
	if err != nil {
		return err
	}
	p := newPipeline()
	_, kubeSet, err := p.Load(kubeProject, kubelet)
	if err != nil {
		return err
	}
	_, runcSet, err := p.Load("runc", runc)
	if err != nil {
		return err
	}
	name := pairName(matrix, kubelet, runc, kubeSet, runcSet)
	parts := []bundle.Part{
		{Dir: filepath.Join("_output", kubeProject, kubelet), Binary: bundle.Binary{Name: "kubelet", Project: kubeProject, Version: kubelet + "+" + kubeSet.Marker(), Replaces: []string{"kubelet"}}},
		{Dir: filepath.Join("_output", "runc", runc), Binary: bundle.Binary{Name: "runc", Project: "runc", Version: runc + "+" + runcSet.Marker(), Replaces: []string{"runc", "docker-runc"}}},
		{Dir: verifyOutput, Binary: bundle.Binary{Name: "verify", Project: "nokmem", Version: verifyVersion}},
	}
	var partDirs []string
	for _, p := range parts {
		partDirs = append(partDirs, p.Dir)
	}
	acct, err := bundleAccount(partDirs, gate)
	if err != nil {
		return err
	}
	acctJSON, err := acct.JSON()
	if err != nil {
		return err
	}
	mtime, err := sourceDate(ctx)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	staging, err := os.MkdirTemp(out, ".staging-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(staging)
	dir := filepath.Join(staging, name)
	m, err := bundle.Assemble(dir, name, parts, key, pub, k.Dev,
		bundle.File{Name: vulndb.JSONFile, Data: acctJSON}, bundle.File{Name: vulndb.MarkdownFile, Data: acct.Markdown()})
	if err != nil {
		return err
	}
	if _, err := bundle.Verify(dir, pub); err != nil {
		return fmt.Errorf("the bundle just written does not verify: %w", err)
	}
	tgz := dir + bundle.TarExt
	if err := bundle.Pack(dir, tgz, mtime); err != nil {
		return err
	}
	// Publish: the folder by an atomic exchange (the old one is left in
	// staging and removed with it), the tarball by rename.
	destDir, destTgz := filepath.Join(out, name), filepath.Join(out, name+bundle.TarExt)
	if err := publish.Swap(dir, destDir); err != nil {
		return err
	}
	if err := os.Rename(tgz, destTgz); err != nil {
		return err
	}
	if err := bundleNotes(m, acct, destDir, destTgz, pub, k.Dev, time.Since(start)); err != nil {
		return err
	}
	if matrix.Vulnerable(pins.Bundle{Kubelet: kubelet, Runc: runc}) {
		fmt.Printf("WARNING: %s pairs a version vendor-pins/matrix.yaml marks vulnerable (known container escapes, see docs/runc.md): install it only on nodes that must keep their engine's exact runc; every other node takes a bundle with runc %s\n", name, runcVersion)
	}
	return nil
}

// bundleNotes prints the release notes of a published bundle, with the
// open findings of each binary (VULNERABILITIES.md has the table).
func bundleNotes(m *bundle.Manifest, acct *vulndb.Account, dir, tgz, pub string, dev bool, took time.Duration) error {
	tgzSHA, err := sums.File(sums.SHA256, tgz)
	if err != nil {
		return err
	}
	sumsSHA, err := sums.File(sums.SHA256, filepath.Join(dir, sums.SHA256.SumsFile))
	if err != nil {
		return err
	}
	fi, err := os.Stat(tgz)
	if err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n=== release notes: %s ===\n", m.Name)
	fmt.Fprintf(&b, "bundle tarball  %s\n  sha256 %s (%.1f MB)\n", tgz, tgzSHA, float64(fi.Size())/1e6)
	fmt.Fprintf(&b, "bundle folder   %s\n  SHA256SUMS sha256 %s\n", dir, sumsSHA)
	for _, bin := range m.Binaries {
		fmt.Fprintf(&b, "  %-8s %-40s sha256 %s replaces %v\n", bin.Name, bin.Version, bin.SHA256, bin.Replaces)
	}
	fmt.Fprintf(&b, "known vulnerabilities (%s, database %s):\n", vulndb.MarkdownFile, acct.Database.Version)
	for _, line := range acct.Summary() {
		fmt.Fprintf(&b, "  %s\n", line)
	}
	fmt.Fprintf(&b, "signed with key %s (public key %s)\n", m.SigningKey.ID, pub)
	if dev {
		fmt.Fprintf(&b, "%s\n", bundle.DevKeyWarning(m.SigningKey.ID))
	}
	fmt.Fprintf(&b, "install on a node: verify run --bundle %s --pubkey /etc/nokmem/release.pub (see README, Put it on a node)\n", filepath.Base(tgz))
	fmt.Fprintf(&b, "bundle step took %s\n", took.Round(time.Millisecond))
	_, err = fmt.Fprint(os.Stdout, b.String())
	return err
}

// sourceDate is SOURCE_DATE_EPOCH when set, else HEAD's commit time.
func sourceDate(ctx context.Context) (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		out, err := exec.CommandContext(ctx, "git", "log", "-1", "--format=%ct", "HEAD").Output()
		if err != nil {
			return time.Time{}, fmt.Errorf("bundle: commit time of HEAD: %w", err)
		}
		s = strings.TrimSpace(string(out))
	}
	sec, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("bundle: source date %q: %w", s, err)
	}
	return time.Unix(sec, 0).UTC(), nil
}
