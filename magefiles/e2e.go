//go:build mage

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"

	"github.com/magefile/mage/mg"

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
// would run in a qemu guest with that kernel; it is not written yet, and the
// target says it ran the host part only.
func (E2e) Kubelet(ctx context.Context) error {
	mg.SerialCtxDeps(ctx, Build, E2e.StockKubelet)
	if err := goTestV(ctx, nil, "^TestKubeletNode$"); err != nil {
		return err
	}
	if img := os.Getenv(kernelImageEnv); img != "" {
		fmt.Printf("e2e:kubelet: %s=%s given, but the 3.10 guest part is not implemented: ran the host part only\n", kernelImageEnv, img)
	} else {
		fmt.Printf("e2e:kubelet: no %s given: ran the host part only (no 3.10 guest)\n", kernelImageEnv)
	}
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
