package kubeletguest

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/nokmem/nokmem/internal/bundle"
	"github.com/nokmem/nokmem/internal/kubeletnode"
)

// ForRepo makes the Config of a guest run from what the pipeline built
// under the repository root (internal/kubeletnode FindArtifacts): the
// stock kubelet, the newest node bundle's kubelet and runc (from its
// unpacked directory next to the tarball, checked against its
// SHA256SUMS), the pause image compiled from the kubelet tree's pause.c and
// the busybox image, both written into work; busybox, containerd,
// containerd-shim-runc-v2 and ctr from PATH (Debian's busybox-static and
// containerd).
func ForRepo(ctx context.Context, root, kernel, work string) (Config, error) {
	cfg := Config{Kernel: kernel, Work: work}
	a, err := kubeletnode.FindArtifacts(root)
	if err != nil {
		return cfg, err
	}
	dir := strings.TrimSuffix(a.Bundle, bundle.TarExt)
	cfg.StockKubelet, cfg.NokmemKubelet, cfg.Runc = a.StockKubelet, filepath.Join(dir, "kubelet"), filepath.Join(dir, "runc")
	cfg.Bundle, cfg.Pub, cfg.Verify = a.Bundle, a.Pub, filepath.Join(dir, "verify")
	if err := checkSums(filepath.Join(dir, "SHA256SUMS"), "kubelet", "runc", "verify"); err != nil {
		return cfg, err
	}
	for _, t := range []struct {
		dst  *string
		name string
	}{{&cfg.Busybox, "busybox"}, {&cfg.Containerd, "containerd"}, {&cfg.Shim, "containerd-shim-runc-v2"}, {&cfg.Ctr, "ctr"}} {
		if *t.dst, err = exec.LookPath(t.name); err != nil {
			return cfg, fmt.Errorf("%s (Debian packages busybox-static, containerd): %w", t.name, err)
		}
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		return cfg, err
	}
	pause := filepath.Join(work, "pause")
	if err := kubeletnode.BuildPause(ctx, a.PauseC, pause); err != nil {
		return cfg, err
	}
	cfg.PauseImage, cfg.BusyboxImage = filepath.Join(work, "pause.tar"), filepath.Join(work, "busybox.tar")
	if err := kubeletnode.WritePauseImage(pause, cfg.PauseImage); err != nil {
		return cfg, err
	}
	return cfg, kubeletnode.WriteBusyboxImage(cfg.Busybox, cfg.BusyboxImage)
}

// checkSums checks the named files of a bundle directory against its
// SHA256SUMS (`<hex>  <name>` lines); the signature was checked when the
// bundle was built, and verify checks it again when it installs.
func checkSums(sums string, names ...string) error {
	f, err := os.Open(sums)
	if err != nil {
		return err
	}
	defer f.Close()
	want := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fs := strings.Fields(sc.Text()); len(fs) == 2 {
			want[strings.TrimPrefix(fs[1], "*")] = fs[0]
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	for _, n := range names {
		p := filepath.Join(filepath.Dir(sums), n)
		h := sha256.New()
		b, err := os.Open(p)
		if err != nil {
			return err
		}
		_, err = io.Copy(h, b)
		b.Close()
		if err != nil {
			return err
		}
		if got := hex.EncodeToString(h.Sum(nil)); want[n] != got {
			return fmt.Errorf("%s: sha256 %s, %s lists %q", p, got, sums, want[n])
		}
	}
	return nil
}
