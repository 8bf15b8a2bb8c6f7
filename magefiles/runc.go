//go:build mage

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/magefile/mage/mg"

	"github.com/nokmem/nokmem/internal/pipeline"
	"github.com/nokmem/nokmem/internal/runcproof/qemuproof"
)

// Runc builds runc with kmem activation off, and proves it with the real binary.
type Runc mg.Namespace

// runcProofVersion is the runc whose patched and unpatched builds show that
// the strace kmem proof (internal/runcproof) can fail: unpatched rc5
// activates kmem on every new memory cgroup.
const runcProofVersion = "v1.0.0-rc5"

// runcUnpatched holds the proof version built without its patches,
// relative to the repository root.
var runcUnpatched = repo.Unpatched("runc", runcProofVersion)

// Build builds a buildable runc version through the pipeline
// (`go tool mage runc:build v1.4.4`): h1-verified inputs, its fix (none for
// v1.4.4: the pipeline reads its cgroupfs driver first), static build with
// the pinned toolchain, ELF check, `runc --version` showing the version, its
// commit (when known) and the patch-set marker, atomic publish into
// _output/runc/<version>. For the proof version (v1.0.0-rc5) it also builds
// the unpatched runc into _build/runc/v1.0.0-rc5-unpatched/runc for the
// behavioural test (runc:testKmem). Unchanged inputs make it a no-op. A
// version the matrix does not list as buildable is refused with its reason
// and the nearest buildable version.
func (Runc) Build(ctx context.Context, version string) error {
	start := time.Now()
	if _, err := buildProject(ctx, pipeline.Runc, version); err != nil {
		return err
	}
	if version != runcProofVersion {
		return nil
	}
	patchedTook := time.Since(start)
	step := time.Now()
	built, err := newPipeline().BuildUnpatched(ctx, pipeline.Runc, runcProofVersion)
	if err != nil {
		return err
	}
	slog.Info("runc ready", "patched", filepath.Join(repo.Output("runc", runcProofVersion), "runc"), "unpatched", filepath.Join(runcUnpatched, "runc"), "unpatchedRebuilt", built,
		"patchedStep", patchedTook.Round(time.Millisecond), "unpatchedStep", time.Since(step).Round(time.Millisecond))
	return nil
}

// Audit reads the source of any runc version (from the module proxy) and
// says whether its libcontainer's MemoryGroup.Apply activates kmem, which
// fix applies (buildtag when kmem_disabled.go is there, else patch),
// its matrix status and whether a lock exists.
func (Runc) Audit(ctx context.Context, version string) error {
	return audit(ctx, "runc", version)
}

// Checksums rebuilds a buildable runc version into
// _build/runc/<version>/rebuild (nothing is published; the build cache is
// used) and fails unless its sha256 equals vendor-pins/runc/<version>.CHECKSUMS.
func (Runc) Checksums(ctx context.Context, version string) error {
	return checksumsProject(ctx, pipeline.Runc, version)
}

// TestKmem runs the behavioural proof (internal/runcproof) with real
// containers under strace: the default runc (v1.4.4) never writes
// memory.kmem.limit_in_bytes, and the proof version's patched build only
// for an explicit kernel memory limit while its unpatched build activates
// kmem for every container (so the proof can fail). It needs root, cgroup
// v1, strace and busybox-static.
func (Runc) TestKmem(ctx context.Context) error {
	mg.SerialCtxDeps(ctx, mg.F(Runc.Build, runcVersion), mg.F(Runc.Build, runcProofVersion))
	cmd := exec.CommandContext(ctx, "go", "test", "-count=1", "-v", "./internal/runcproof/")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("runc kmem proof: %w", err)
	}
	return nil
}

// kernelImageEnv names the kernel image runc:proveKernel boots (and that
// e2e:kubelet names, for its guest part).
const kernelImageEnv = "NOKMEM_KERNEL_IMAGE"

// ProveKernel boots the kernel image NOKMEM_KERNEL_IMAGE (the RHEL/CentOS
// 7.8 vmlinuz-3.10.0-1127.el7.x86_64 is the one that matters) under
// qemu-system-x86_64 with TCG (docs/memcg-v1-semantics.md §3a) with an
// initramfs holding the default runc and busybox-static, and runs real
// containers there (internal/runcproof/qemuproof): run, exec, ps, events,
// update, pause/resume, kill, delete, with a seccomp rule refusing mkdir
// and a memory limit; memory.kmem.slabinfo of every container cgroup must
// fail with EIO, and 50 short-lived containers must leak no memcg ID; a
// control cgroup with kmem activated by hand must then read its slabinfo
// and keep its memcg ID after rmdir, showing both checks fire on that
// kernel (docs/rhel7-kernel-runs.md has a run). It prints every check with the kernel and runc versions and the time; the
// console log stays in _build/runc/prove-kernel/console.log. Without
// NOKMEM_KERNEL_IMAGE (CI has no kernel image) it says that it skipped and
// why, and succeeds.
func (Runc) ProveKernel(ctx context.Context) error {
	image := os.Getenv(kernelImageEnv)
	if image == "" {
		fmt.Printf("runc:proveKernel: SKIPPED: %s is not set, so there is no kernel to boot (CI has no kernel image; set it to e.g. a RHEL 7.8 vmlinuz-3.10.0-1127.el7.x86_64 to run real runc %s containers on it under qemu)\n", kernelImageEnv, runcVersion)
		return nil
	}
	mg.CtxDeps(ctx, mg.F(Runc.Build, runcVersion))
	start := time.Now()
	rep, work, err := bootRunc(ctx, image, filepath.Join(repo.Output("runc", runcVersion), "runc"), "prove-kernel")
	if err != nil {
		return fmt.Errorf("runc:proveKernel on %s: %w", image, err)
	}
	kernel := "kernel version not reported"
	if k := rep.Get("kernel"); k != nil {
		kernel = k.Detail
	}
	fmt.Printf("runc:proveKernel: runc %s passed every check on %s (%s) in %s; console log %s\n", runcVersion, image,
		kernel, time.Since(start).Round(time.Second), filepath.Join(work, "console.log"))
	return nil
}

// ProveKernelCatchesKmem shows that runc:proveKernel can fail on the real
// kernel: it boots NOKMEM_KERNEL_IMAGE the same way with the unpatched runc
// rc5 (which activates kmem on every memory cgroup it creates; built by
// runc:build v1.0.0-rc5) in place of the default runc, and succeeds only
// when exactly the kmem checks fail (container slabinfo readable, memcg IDs
// leaked) and every other check passes (qemuproof.ExpectKmemCaught).
// Without NOKMEM_KERNEL_IMAGE it says that it skipped and why, and succeeds.
func (Runc) ProveKernelCatchesKmem(ctx context.Context) error {
	image := os.Getenv(kernelImageEnv)
	if image == "" {
		fmt.Printf("runc:proveKernelCatchesKmem: SKIPPED: %s is not set, so there is no kernel to boot (CI has no kernel image)\n", kernelImageEnv)
		return nil
	}
	mg.CtxDeps(ctx, mg.F(Runc.Build, runcProofVersion))
	runc := filepath.Join(runcUnpatched, "runc")
	start := time.Now()
	rep, work, err := bootRunc(ctx, image, runc, "prove-kernel-unpatched")
	if err != nil && !errors.Is(err, qemuproof.ErrProof) {
		return fmt.Errorf("runc:proveKernelCatchesKmem on %s: %w", image, err)
	}
	if err := qemuproof.ExpectKmemCaught(rep); err != nil {
		return fmt.Errorf("runc:proveKernelCatchesKmem on %s with %s: %w (console: %s)", image, runc, err, filepath.Join(work, "console.log"))
	}
	fmt.Printf("runc:proveKernelCatchesKmem: the proof failed the unpatched runc %s on %s exactly on its kmem checks (%v) in %s; console log %s\n",
		runcProofVersion, image, qemuproof.KmemChecks, time.Since(start).Round(time.Second), filepath.Join(work, "console.log"))
	return nil
}

// bootRunc runs the qemuproof guest on the kernel image with the runc at
// runcPath and 50 short-lived containers, its work (initramfs, console log)
// in _build/runc/<dir>, and prints every check the guest reported. It
// returns the report, the work directory and qemuproof.Run's error.
func bootRunc(ctx context.Context, image, runcPath, dir string) (*qemuproof.Report, string, error) {
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		return nil, "", fmt.Errorf("busybox (Debian package busybox-static): %w", err)
	}
	work, err := filepath.Abs(repo.Build("runc", dir))
	if err != nil {
		return nil, "", err
	}
	runc, err := filepath.Abs(runcPath)
	if err != nil {
		return nil, "", err
	}
	rep, err := qemuproof.Run(ctx, qemuproof.Config{Kernel: image, Runc: runc, Busybox: busybox, Work: work, Containers: 50})
	if rep != nil {
		for _, r := range rep.Results {
			fmt.Printf("  %-24s %-4s %s\n", r.Name, r.Status, r.Detail)
		}
	}
	return rep, work, err
}
