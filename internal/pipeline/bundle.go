package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/nokmem/nokmem/internal/bundle"
	"github.com/nokmem/nokmem/internal/patchset"
	"github.com/nokmem/nokmem/internal/pins"
	"github.com/nokmem/nokmem/internal/publish"
	"github.com/nokmem/nokmem/internal/release/sums"
	"github.com/nokmem/nokmem/internal/stepstamp"
	"github.com/nokmem/nokmem/internal/vulndb"
)

// VulnerableMarker ends the kubelet/runc part of the name of a bundle
// that pairs a version matrix.yaml marks vulnerable.
const VulnerableMarker = "-vulnerable"

// PairName is nokmem-<kubelet version>-<runc version>[-vulnerable]+<marker>,
// the marker being nokmem. and 12 hex digits of the sha256 of both fix
// markers (patch set or build tag), so it changes whenever either fix does;
// -vulnerable when the matrix marks either version vulnerable.
func PairName(m *pins.Matrix, pair pins.Bundle, kubeSet, runcSet *patchset.Set) string {
	h := sha256.Sum256([]byte(kubeSet.Marker() + "\n" + runcSet.Marker()))
	label := pair.Runc
	if m.Vulnerable(pair) {
		label += VulnerableMarker
	}
	return bundle.Name(pair.Kubelet, label, patchset.MarkerPrefix+hex.EncodeToString(h[:])[:12])
}

// pair loads what a bundle of pair is named and assembled from: the
// matrix and both patch series.
func (p *Pipeline) pair(pair pins.Bundle) (m *pins.Matrix, kubeSet, runcSet *patchset.Set, err error) {
	if m, err = pins.LoadMatrix(p.PinsDir()); err != nil {
		return nil, nil, nil, err
	}
	if _, kubeSet, err = p.Load(Kubelet.Name, pair.Kubelet); err != nil {
		return nil, nil, nil, err
	}
	if _, runcSet, err = p.Load(Runc.Name, pair.Runc); err != nil {
		return nil, nil, nil, err
	}
	return m, kubeSet, runcSet, nil
}

// BundleName is the name of pair's bundle (see PairName).
func (p *Pipeline) BundleName(pair pins.Bundle) (string, error) {
	m, kubeSet, runcSet, err := p.pair(pair)
	if err != nil {
		return "", err
	}
	return PairName(m, pair, kubeSet, runcSet), nil
}

// PublishedVerifyVersion asks the published verify for its version.
func (p *Pipeline) PublishedVerifyVersion(ctx context.Context) (string, error) {
	bin := filepath.Join(p.Layout().Verify(), "verify")
	out, err := exec.CommandContext(ctx, bin, "version", "-o", "json").Output()
	if err != nil {
		return "", fmt.Errorf("%s version: %w", bin, err)
	}
	var v struct{ Version string }
	if err := json.Unmarshal(out, &v); err != nil || v.Version == "" {
		return "", fmt.Errorf("%s version printed %q: %v", bin, out, err)
	}
	return v.Version, nil
}

// StepInputsAfter starts the input stamp of a step that publishes what
// earlier steps made, with the source date as its file times: StepInputs,
// the records of those steps (name → record file) and the source date.
func (p *Publisher) StepInputsAfter(after map[string]string) (*publish.Stamp, error) {
	in, err := p.StepInputs()
	if err != nil {
		return nil, err
	}
	for name, record := range after {
		if err := stepstamp.AddRecord(in, "step "+name, record); err != nil {
			return nil, err
		}
	}
	in.Add("source date", []byte(p.SourceDate.String()))
	return in, nil
}

// BundleStep assembles the default pair's bundle into _output/bundle (see
// BuildPair, gated) unless its record (_build/stamps/bundle) shows the
// same inputs (the records of both release sets and verify, which name
// every file of theirs, the bundle name, the source date, the signing key
// and the build tool) and the same bundle folder and tarball.
func (p *Publisher) BundleStep(ctx context.Context, pair pins.Bundle) error {
	in, err := p.StepInputsAfter(map[string]string{
		"release kubelet": p.ReleaseRecord(Kubelet.Name, pair.Kubelet),
		"release runc":    p.ReleaseRecord(Runc.Name, pair.Runc),
		"verify":          p.Layout().Record("verify"),
	})
	if err != nil {
		return err
	}
	name, err := p.BundleName(pair)
	if err != nil {
		return err
	}
	in.Add("bundle name", []byte(name))
	out := p.Layout().Bundle()
	s := &stepstamp.Step{Name: "bundle " + name, File: p.Layout().Record("bundle"), Inputs: in,
		Outputs: []string{filepath.Join(out, name), filepath.Join(out, name+bundle.TarExt)}}
	return p.RunStep(s, func() error { return p.BuildPair(ctx, pair, out, true) })
}

// BuildPair assembles, checks, packs and publishes into out the bundle of
// pair (versions of the matrix) from the kubelet, runc and verify release
// sets in _output, with the merged vulnerability account of the three,
// and prints its release notes on Notes. gate (the default bundle)
// refuses a runc with a finding that has no reviewed not_affected
// statement. Every check runs before anything is written; the bundle is
// assembled in a staging folder under out and published by an atomic
// exchange (the folder) and a rename (the tarball).
func (p *Publisher) BuildPair(ctx context.Context, pair pins.Bundle, out string, gate bool) error {
	start := time.Now()
	verifyVersion, err := p.PublishedVerifyVersion(ctx)
	if err != nil {
		return fmt.Errorf("bundle: build verify first: %w", err)
	}
	matrix, kubeSet, runcSet, err := p.pair(pair)
	if err != nil {
		return err
	}
	name := PairName(matrix, pair, kubeSet, runcSet)
	parts := []bundle.Part{
		{Dir: p.Layout().Output(Kubelet.Name, pair.Kubelet), Binary: bundle.Binary{Name: "kubelet", Project: Kubelet.Name, Version: pair.Kubelet + "+" + kubeSet.Marker(), Replaces: []string{"kubelet"}}},
		{Dir: p.Layout().Output(Runc.Name, pair.Runc), Binary: bundle.Binary{Name: "runc", Project: Runc.Name, Version: pair.Runc + "+" + runcSet.Marker(), Replaces: []string{"runc", "docker-runc"}}},
		{Dir: p.Layout().Verify(), Binary: bundle.Binary{Name: "verify", Project: "nokmem", Version: verifyVersion}},
	}
	var partDirs []string
	for _, part := range parts {
		partDirs = append(partDirs, part.Dir)
	}
	acct, err := bundleAccount(partDirs, gate)
	if err != nil {
		return err
	}
	acctJSON, err := acct.JSON()
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
	k := p.Key
	m, err := bundle.Assemble(dir, name, parts, k.Secret, k.Public, k.Dev,
		bundle.File{Name: vulndb.JSONFile, Data: acctJSON}, bundle.File{Name: vulndb.MarkdownFile, Data: acct.Markdown()})
	if err != nil {
		return err
	}
	if _, err := bundle.Verify(dir, k.Public); err != nil {
		return fmt.Errorf("the bundle just written does not verify: %w", err)
	}
	tgz := dir + bundle.TarExt
	if err := bundle.Pack(dir, tgz, p.SourceDate); err != nil {
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
	if err := p.bundleNotes(m, acct, destDir, destTgz, time.Since(start)); err != nil {
		return err
	}
	if matrix.Vulnerable(pair) {
		p.note("WARNING: %s pairs a version vendor-pins/matrix.yaml marks vulnerable (known container escapes, see docs/runc.md): install it only on nodes that must keep their engine's exact runc; every other node takes a bundle with runc %s\n", name, matrix.Default(Runc.Name))
	}
	return nil
}

// note prints to Notes (stdout in the magefiles).
func (p *Publisher) note(format string, a ...any) {
	if p.Notes != nil {
		fmt.Fprintf(p.Notes, format, a...)
	}
}

// bundleAccount merges the parts' accounts into the bundle's files; for
// the default bundle (gate) it first checks that runc has no finding
// without a reviewed not_affected statement.
func bundleAccount(partDirs []string, gate bool) (*vulndb.Account, error) {
	a, err := vulndb.MergeDirs(partDirs...)
	if err != nil {
		return nil, fmt.Errorf("bundle: %w (write the part's release set again: `go tool mage release:write <project> <version>`, or verify:build)", err)
	}
	if gate {
		if err := vulndb.BundleGate(a); err != nil {
			return nil, fmt.Errorf("the default bundle's runc has known vulnerabilities: %w", err)
		}
	}
	return a, nil
}

// bundleNotes prints the release notes of a published bundle, with the
// open findings of each binary (VULNERABILITIES.md has the table).
func (p *Publisher) bundleNotes(m *bundle.Manifest, acct *vulndb.Account, dir, tgz string, took time.Duration) error {
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
	fmt.Fprintf(&b, "signed with key %s (public key %s)\n", m.SigningKey.ID, p.Key.Public)
	if p.Key.Dev {
		fmt.Fprintf(&b, "%s\n", bundle.DevKeyWarning(m.SigningKey.ID))
	}
	fmt.Fprintf(&b, "install on a node: verify run --bundle %s --pubkey /etc/nokmem/release.pub (docs/node.md)\n", filepath.Base(tgz))
	fmt.Fprintf(&b, "bundle step took %s\n", took.Round(time.Millisecond))
	p.note("%s", b.String())
	return nil
}
