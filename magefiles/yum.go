//go:build mage

package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/magefile/mage/mg"

	"github.com/nokmem/nokmem/internal/bundle"
	"github.com/nokmem/nokmem/internal/patchset"
	"github.com/nokmem/nokmem/internal/release/signkey"
	"github.com/nokmem/nokmem/internal/rpmrepo"
	"github.com/nokmem/nokmem/internal/stepstamp"
)

// Yum builds the RPMs and the yum repository.
type Yum mg.Namespace

// yumOutput is the published yum repository.
var yumOutput = filepath.Join("_output", "yum")

// yumBaseURLEnv names where the repository will be served (baseurl= of
// the published nokmem.repo); without it the repo file says file:///srv/nokmem/yum.
const yumBaseURLEnv = "NOKMEM_YUM_BASEURL"

// Build (after bundle:build) makes, from the published bundle (checked with
// the public key first), kubelet-<version>-<release>.x86_64.rpm (release
// rpmrepo.KubeletRelease: derived from the source date and the binary),
// nokmem-node-<version>-<release>.x86_64.rpm and
// nokmem-release-key-<version>-<release>.noarch.rpm, each signed with the
// OpenPGP key signkey.ChooseGPG names (NOKMEM_RPM_GPG_KEY; the development
// key otherwise, refused under NOKMEM_RELEASE=1), runs createrepo_c, signs
// repomd.xml, writes nokmem.repo, nokmem-packages.yml and the signed
// SHA256SUMS, and publishes all of it as _output/yum/. Build time, file
// times and signature times are the source date (HEAD's commit time or
// SOURCE_DATE_EPOCH), so the same sources give the same bytes.
//
// With nothing changed it does no work: its record (_build/stamps/yum)
// holds the bundle step's record, the source date, the createrepo_c
// binary, the signing key and the build tool, and the identity of every
// file under _output/yum.
func (Yum) Build(ctx context.Context) error {
	mg.SerialCtxDeps(ctx, Bundle.Build)
	in, err := stepInputsAfter(ctx, map[string]string{"bundle": bundleRecord})
	if err != nil {
		return err
	}
	if err := addTool(in, "createrepo_c"); err != nil {
		return err
	}
	s := &stepstamp.Step{Name: "yum repository", File: yumRecord, Inputs: in, Outputs: []string{yumOutput}}
	return runStep(s, func() error { return buildYum(ctx) })
}

// buildYum makes the RPMs and the repository (see Yum.Build).
func buildYum(ctx context.Context) error {
	start := time.Now()
	name, err := bundleName()
	if err != nil {
		return err
	}
	key, pub, err := signingKey()
	if err != nil {
		return err
	}
	dir := filepath.Join(bundleOutput, name)
	m, err := bundle.Verify(dir, pub)
	if err != nil {
		return fmt.Errorf("yum: the published bundle: %w", err)
	}
	mtime, err := sourceDate(ctx)
	if err != nil {
		return err
	}
	kubeSet, err := patchset.Load(filepath.Join("patches", kubeProject, kubeVersion))
	if err != nil {
		return err
	}
	read := func(p string) ([]byte, error) {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("yum: %w", err)
		}
		return b, nil
	}
	kubelet, err := read(filepath.Join(dir, "kubelet"))
	if err != nil {
		return err
	}
	verifyBin, err := read(filepath.Join(dir, "verify"))
	if err != nil {
		return err
	}
	tgz, err := read(filepath.Join(bundleOutput, name+bundle.TarExt))
	if err != nil {
		return err
	}
	pubKey, err := read(pub)
	if err != nil {
		return err
	}
	gpg, err := signkey.ChooseGPG(os.Getenv)
	if err != nil {
		return err
	}
	if gpg.Dev {
		slog.Warn("signing the RPMs with the development OpenPGP key; set "+signkey.GPGKeyEnv+" to sign with a release key", "fingerprint", gpg.Fingerprint())
	}
	gpgPub, err := gpg.Public()
	if err != nil {
		return err
	}
	node, err := rpmrepo.Node{
		VerifyVersion: m.Binary("verify").Version,
		Verify:        verifyBin,
		BundleFile:    name + bundle.TarExt,
		Bundle:        tgz,
		PubKey:        pubKey,
		BuildTime:     mtime,
	}.Package()
	if err != nil {
		return err
	}
	keyPkg := rpmrepo.ReleaseKey{Version: node.Version, Release: node.Release, GPGPublic: gpgPub, BuildTime: mtime}.Package()
	kube := rpmrepo.Kubelet{
		Version:     kubeVersion,
		Release:     rpmrepo.KubeletRelease(mtime, kubelet),
		Binary:      kubelet,
		PatchMarker: kubeSet.Marker(),
		BuildTime:   mtime,
	}.Package()
	baseURL := os.Getenv(yumBaseURLEnv)
	if baseURL == "" {
		baseURL = "file:///srv/nokmem/yum"
	}
	pubd, err := rpmrepo.Publish(ctx, yumOutput, []*rpmrepo.Package{kube, node, keyPkg},
		rpmrepo.Options{Key: key, Pub: pub, GPG: gpg.Key, BaseURL: baseURL, SourceDate: mtime})
	if err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n=== yum repository: %s ===\n", pubd.Dir)
	for _, r := range pubd.RPMs {
		fi, err := os.Stat(filepath.Join(pubd.Dir, r))
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "  %-60s %6.1f MB\n", r, float64(fi.Size())/1e6)
	}
	fmt.Fprintf(&b, "RPMs and repomd.xml signed with OpenPGP key %s (%s) in %s; SHA256SUMS signed with %s; createrepo_c took %s; yum step took %s\n",
		gpg.Fingerprint(), gpg.Source, pubd.SignTook.Round(time.Millisecond), pub, pubd.RepoTook.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	fmt.Fprintf(&b, "on a node: %s (baseurl %s; set %s), then install exactly the packages of %s (docs/fleet.md)\n",
		rpmrepo.RepoFileName, baseURL, yumBaseURLEnv, rpmrepo.PackagesFile)
	_, err = fmt.Fprint(os.Stdout, b.String())
	return err
}
