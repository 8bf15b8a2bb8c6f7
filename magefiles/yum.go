//go:build mage

package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/magefile/mage/mg"

	"github.com/nokmem/nokmem/internal/pipeline"
	"github.com/nokmem/nokmem/internal/release/signkey"
)

// Yum builds the RPMs and the yum repository.
type Yum mg.Namespace

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
	pub, err := newPublisher(ctx)
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
	return pub.YumStep(ctx, defaultBundle(), pipeline.Yum{GPG: gpg, BaseURL: os.Getenv(yumBaseURLEnv), BaseURLEnv: yumBaseURLEnv})
}
