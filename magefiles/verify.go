//go:build mage

package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/magefile/mage/mg"

	"github.com/nokmem/nokmem/internal/pipeline"
	"github.com/nokmem/nokmem/internal/publish"
	"github.com/nokmem/nokmem/internal/verifybuild"
)

// Verify builds the node program.
type Verify mg.Namespace

// verifyOutput is where the node program is published.
var verifyOutput = repo.Verify()

// Build builds the verify node program with the toolchain pinned in
// vendor-pins/verify/lock.yaml as a static binary (CGO_ENABLED=0, -trimpath,
// empty build id, stamped with its source commit and bundle name, so
// rebuilds are byte-identical), checks it (pinned Go, static ELF that runs
// on CentOS 7) and publishes it atomically into _output/verify with its
// release set: SHA256SUMS, SHA512SUMS, SBOM (module graph from go.sum),
// provenance, vulnerability account and signature. A sha256 that differs from
// vendor-pins/verify/verify.CHECKSUMS is a warning here and an error in
// verify:checksums.
//
// With nothing changed it does no work, and runs no go command: its record
// (_build/stamps/verify) holds the content of every source file of the
// last build (go.mod, go.sum, the packages verify imports), the file names
// in those packages' folders, the stamped version (last commit of those
// files, dirty or not), the lock, the GO* environment, the bundle name,
// the signing key and the build tool, and the identity of every file in
// _output/verify.
func (Verify) Build(ctx context.Context) error {
	pub, name, err := verifyPublisher(ctx)
	if err != nil {
		return err
	}
	return pub.VerifyStep(ctx, name)
}

// verifyPublisher is the publisher and the bundle name verify is stamped with.
func verifyPublisher(ctx context.Context) (*pipeline.Publisher, string, error) {
	pub, err := newPublisher(ctx)
	if err != nil {
		return nil, "", err
	}
	name, err := bundleName()
	return pub, name, err
}

// buildVerify builds, checks and publishes verify with its release set
// into dest (pipeline.Publisher.BuildVerify) and returns its sha256 by file name.
func buildVerify(ctx context.Context, dest string) (map[string]string, error) {
	pub, name, err := verifyPublisher(ctx)
	if err != nil {
		return nil, err
	}
	sha, _, err := pub.BuildVerify(ctx, dest, name)
	return sha, err
}

// Checksums builds verify and fails unless its sha256 equals the one
// committed in vendor-pins/verify/verify.CHECKSUMS. verify's sources change
// often: after committing a change to them, run verify:updateChecksums and
// commit vendor-pins/verify/verify.CHECKSUMS (the stamped commit is the
// last one that touched verify's sources, so that second commit does not
// change the binary).
func (Verify) Checksums(ctx context.Context) error {
	sha, err := buildVerify(ctx, verifyOutput)
	if err != nil {
		return err
	}
	if err := publish.CheckExpected(verifybuild.ChecksumsFile, sha); err != nil {
		return fmt.Errorf("%w\nif verify's sources changed on purpose, commit them, then run `go tool mage verify:updateChecksums` and commit %s", err, verifybuild.ChecksumsFile)
	}
	fmt.Fprintf(os.Stderr, "verify: built binary matches %s\n", verifybuild.ChecksumsFile)
	return nil
}

// UpdateChecksums builds verify from committed sources and writes its
// sha256 to vendor-pins/verify/verify.CHECKSUMS. It refuses a dirty tree,
// whose binary no clean checkout can reproduce.
func (Verify) UpdateChecksums(ctx context.Context) error {
	sha, err := buildVerify(ctx, verifyOutput)
	if err != nil {
		return err
	}
	if v, err := newPipeline().PublishedVerifyVersion(ctx); err != nil {
		return err
	} else if strings.HasSuffix(v, "-dirty") {
		return fmt.Errorf("verify %s: commit verify's sources first; a dirty build cannot be reproduced", v)
	}
	line := fmt.Sprintf("%s  verify\n", sha["verify"])
	if err := os.WriteFile(verifybuild.ChecksumsFile, []byte(line), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "verify: wrote %s: %s", verifybuild.ChecksumsFile, line)
	return nil
}
