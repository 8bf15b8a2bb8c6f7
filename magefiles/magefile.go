//go:build mage

// Mage targets for nokmem. Targets stay thin: the work lives in tested
// packages under internal/. Run `go tool mage -l` for the list.
package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/magefile/mage/mg"

	"github.com/nokmem/nokmem/internal/testrun"
)

// Build builds the default artifacts, kubelet v1.12.4 and runc v1.4.4,
// into _output/<project>/<version> with their release sets (checksums, SBOM,
// provenance, signature), the verify node program into _output/verify (with
// its own release set), and the signed node bundle of all three into
// _output/bundle/<name>/ and <name>.tar.gz, ending with release notes, and
// the kubelet and nokmem-node RPMs with their yum repository in _output/yum/.
// With unchanged inputs no step does any work: the kubelet and runc builds
// by their INPUTS stamps, the later steps by their records in
// _build/stamps (see magefiles/steps.go). It ends with the time of each step.
func Build(ctx context.Context) error {
	start := time.Now()
	steps := []struct {
		name   string
		target any
	}{
		{"release sets", Release.All}, {"verify", Verify.Build}, {"bundle", Bundle.Build}, {"yum", Yum.Build},
	}
	pre, err := prebuilt()
	if err != nil {
		return err
	}
	if !pre {
		steps = append([]struct {
			name   string
			target any
		}{{"kubelet", mg.F(Kubelet.Build, kubeVersion)}, {"runc", mg.F(Runc.Build, runcVersion)}}, steps...)
	}
	var took []string
	for _, st := range steps {
		t := time.Now()
		mg.SerialCtxDeps(ctx, st.target)
		took = append(took, fmt.Sprintf("%s %s", st.name, time.Since(t).Round(time.Millisecond)))
	}
	fmt.Fprintf(os.Stderr, "build: steps took %s; build target %s\n", strings.Join(took, ", "), time.Since(start).Round(time.Millisecond))
	return nil
}

// Test runs every test: it builds first (the proofs run on the built trees
// and binaries), checks that rebuilds reproduce the committed checksums,
// then runs all Go tests, which include the kmem proofs on the unpatched and
// patched trees, the upstream test subset, the simulator, the real-kernel
// and runc tests (the default runc's strace kmem proof, with rc5 patched and
// unpatched to show it can fail), the engine tests with the default bundle's
// runc (internal/enginetest: containerd 1.6 and Docker 20.10;
// internal/runcreplay: the go-runc argument sets of containerd 1.0-1.4 and
// Docker CE 17.11-19.03), the real-kubelet node test with its planted faults
// (e2e:kubelet and e2e:kubeletFaults, on the stock kubelet of
// e2e:stockKubelet; about 3 minutes), and the real-3.10 runs in qemu,
// runc:proveKernel, runc:proveKernelCatchesKmem and e2e:kubeletGuest (which
// say they skipped without NOKMEM_KERNEL_IMAGE). For the other buildable versions of
// the matrix it runs the cheap per-version checks (matrixChecks) and the kmem
// proof of every kubelet tree. It ends with one "N passed, N failed" line.
func Test(ctx context.Context) error {
	mg.SerialCtxDeps(ctx, Build, E2e.StockKubelet, mg.F(Kubelet.Tree, kubeVersion), mg.F(Kubelet.Checksums, kubeVersion), mg.F(Runc.Checksums, runcVersion), Verify.Checksums,
		mg.F(Runc.Build, runcProofVersion), // the runc kmem proof's patched and unpatched rc5
		// the three say SKIPPED without NOKMEM_KERNEL_IMAGE
		Runc.ProveKernel, Runc.ProveKernelCatchesKmem, E2e.KubeletGuest)
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
