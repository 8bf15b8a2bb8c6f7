//go:build mage

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/magefile/mage/mg"

	"github.com/nokmem/nokmem/internal/kubeletguest"
	"github.com/nokmem/nokmem/internal/pipeline"
)

// E2e runs the built artifacts on a real node: a real kubelet on a real
// container runtime (docs/staging-acceptance.md).
type E2e mg.Namespace

// kubeletFaultsEnv runs TestKubeletNodeFaults (internal/kubeletnode FaultsEnv).
const kubeletFaultsEnv = "NOKMEM_E2E_FAULTS"

// Kubelet runs the staging acceptance scenario on this machine
// (internal/kubeletnode TestKubeletNode): containerd 1.6 with CRI on
// scratch directories, the stock kubelet v1.12.4 (e2e:stockKubelet) with
// three static pods in a scratch cgroup root, its kmem writes seen with
// strace, then the bundle's `verify run --bundle` under that kubelet and
// the checks of the migrated node. It needs root, cgroup v1, FUSE,
// containerd, strace and gcc. With NOKMEM_KERNEL_IMAGE set, the guest part
// (e2e:kubeletGuest) runs afterwards in a qemu guest booted with that
// kernel; without it the target says it ran the host part only.
func (E2e) Kubelet(ctx context.Context) error {
	mg.SerialCtxDeps(ctx, Build, E2e.StockKubelet)
	if err := goTestV(ctx, nil, "^TestKubeletNode$"); err != nil {
		return err
	}
	if os.Getenv(kernelImageEnv) == "" {
		fmt.Printf("e2e:kubelet: no %s given: ran the host part only (no 3.10 guest)\n", kernelImageEnv)
		return nil
	}
	return E2e{}.KubeletGuest(ctx)
}

// KubeletGuest runs the guest part of e2e:kubelet (internal/kubeletguest,
// docs/kubelet-guest.md): in a qemu guest (TCG, 3 GB) booted with
// NOKMEM_KERNEL_IMAGE, containerd (Debian's) with the bundle's runc, the
// stock kubelet and then the bundle's nokmem kubelet, standalone with the
// three static pods; memory.kmem.slabinfo of every memory cgroup under
// each kubepods, pods removed and added three times, the leaked memcg IDs
// counted before and after. On a kernel that activates v1 kmem (3.10) the
// stock kubelet's cgroups must read slabinfo and leak IDs with churn, the
// nokmem kubelet's must fail with EIO and leak none; on a kernel that
// ignores kmem limit writes those checks are n/a and it says so. The
// console log stays in _build/e2e/kubelet-guest/console.log. Without
// NOKMEM_KERNEL_IMAGE it says that it skipped and succeeds.
func (E2e) KubeletGuest(ctx context.Context) error {
	image := os.Getenv(kernelImageEnv)
	if image == "" {
		fmt.Printf("e2e:kubeletGuest: SKIPPED: %s is not set, so there is no kernel to boot (set it to e.g. a RHEL 7.8 vmlinuz-3.10.0-1127.el7.x86_64)\n", kernelImageEnv)
		return nil
	}
	mg.SerialCtxDeps(ctx, Build, E2e.StockKubelet)
	work, err := filepath.Abs(repo.Build("e2e", "kubelet-guest"))
	if err != nil {
		return err
	}
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	cfg, err := kubeletguest.ForRepo(ctx, root, image, work)
	if err != nil {
		return fmt.Errorf("e2e:kubeletGuest: %w", err)
	}
	rep, err := kubeletguest.Run(ctx, cfg)
	if rep != nil {
		for _, r := range rep.Results {
			fmt.Printf("  guest %-22s %-4s %s\n", r.Name, r.Status, r.Detail)
		}
		for _, v := range rep.Verdicts {
			fmt.Printf("  check %-22s %-4s %s\n", v.Name, v.Status, v.Detail)
		}
	}
	if err != nil {
		return fmt.Errorf("e2e:kubeletGuest on %s: %w", image, err)
	}
	kernel := "kernel version not reported"
	if k := rep.Get("kernel"); k != nil {
		kernel = k.Detail
	}
	if !rep.KmemKernel {
		fmt.Printf("e2e:kubeletGuest: kernel %s does not activate v1 kmem accounting: the kubelets and pods ran, the kmem checks are n/a (they need a 3.10 kernel)\n", kernel)
	}
	fmt.Printf("e2e:kubeletGuest: passed on %s (%s) in %s; console log %s\n", image, kernel, rep.Wall.Round(time.Second), filepath.Join(work, "console.log"))
	return nil
}

// KubeletFaults runs the scenario three times with a planted fault (the
// stock kubelet where the bundle's was installed, a container killed
// during the run, a pod process moved out of kubepods) and passes when
// each makes its check fail (TestKubeletNodeFaults).
func (E2e) KubeletFaults(ctx context.Context) error {
	mg.SerialCtxDeps(ctx, Build, E2e.StockKubelet)
	return goTestV(ctx, []string{kubeletFaultsEnv + "=1"}, "^TestKubeletNodeFaults$")
}

func goTestV(ctx context.Context, env []string, run string) error {
	cmd := exec.CommandContext(ctx, "go", "test", "-count=1", "-v", "-timeout=40m", "-run", run, "./internal/kubeletnode/")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	return cmd.Run()
}

// StockKubelet builds the stock kubelet the node test starts from: the
// default kubelet tree built like the release (same lock, toolchain and
// flags) but with its kmem patch presented removed (go build -overlay; the
// tree itself is not touched), into _build/kubernetes/v1.12.4-stock/kubelet.
// Its --version says v1.12.4+stock. With unchanged inputs it does no work.
func (E2e) StockKubelet(ctx context.Context) error {
	_, err := newPipeline().BuildStock(ctx, pipeline.Kubelet, kubeVersion)
	return err
}
