//go:build mage

// Mage targets for nokmem. Targets stay thin: the work lives in tested
// packages under internal/. Run `go tool mage -l` for the list.
package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/magefile/mage/mg"

	"github.com/nokmem/nokmem/internal/testrun"
)

// Build builds the default artifacts, kubelet v1.12.4 and runc v1.0.0-rc5,
// into _output/<project>/<version> with their release sets (checksums, SBOM,
// provenance, signature), the verify node program into _output/verify (with
// its own release set), and the signed node bundle of all three into
// _output/bundle/<name>/ and <name>.tar.gz, ending with release notes, and
// the kubelet and nokmem-node RPMs with their yum repository in _output/yum/.
// With unchanged inputs the kubelet and runc builds do no work.
func Build(ctx context.Context) error {
	mg.SerialCtxDeps(ctx, Release.All, Verify.Build, Bundle.Build, Yum.Build)
	return nil
}

// Test runs every test: it builds first (the proofs run on the built trees
// and binaries), checks that rebuilds reproduce the committed checksums,
// then runs all Go tests, which include the kmem proofs on the unpatched and
// patched trees, the upstream test subset, the simulator, the real-kernel
// and runc tests, and the real-kubelet node test with its planted faults
// (e2e:kubelet and e2e:kubeletFaults, on the stock kubelet of
// e2e:stockKubelet; about 3 minutes). For the other buildable versions of the matrix it runs
// the cheap per-version checks (matrixChecks) and the kmem proof of every
// kubelet tree. It ends with one "N passed, N failed" line.
func Test(ctx context.Context) error {
	mg.SerialCtxDeps(ctx, Build, E2e.StockKubelet, mg.F(Kubelet.Tree, kubeVersion), mg.F(Kubelet.Checksums, kubeVersion), mg.F(Runc.Checksums, runcVersion), Verify.Checksums)
	kubelets, err := matrixChecks(ctx)
	if err != nil {
		return err
	}
	if os.Getenv(kmemProofVersionsEnv) == "" {
		// TestKmemProofVersions splits the list at spaces.
		os.Setenv(kmemProofVersionsEnv, strings.Join(kubelets, " "))
	}
	if os.Getenv(kubeletFaultsEnv) == "" {
		os.Setenv(kubeletFaultsEnv, "1")
	}
	tally, err := testrun.Run(".", "-count=1", "-timeout=60m", "./...")
	fmt.Printf("test: %s\n", tally)
	return err
}
