// Package kubeletguest runs the guest part of the staging acceptance run
// (`go tool mage e2e:kubelet` with NOKMEM_KERNEL_IMAGE): the stock and the
// nokmem kubelet v1.12.4, standalone with static pods on containerd (from
// Debian) and the bundle's runc, in a qemu guest booted with a given kernel
// image (the RHEL/CentOS 7.8 kernel 3.10.0-1127 is the one that matters),
// as docs/memcg-v1-semantics.md §3a describes. It reuses qemuproof's
// initramfs writer, qemu command line and result lines; the guest's /init
// (Script) prints the facts and Evaluate judges them on the host. See
// docs/kubelet-guest.md.
package kubeletguest

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/nokmem/nokmem/internal/kubeletnode"
	"github.com/nokmem/nokmem/internal/runcproof/qemuproof"
)

// pauseRef is the sandbox image (internal/kubeletnode's local pause image).
const pauseRef = kubeletnode.PauseImage

// Config is one guest run.
type Config struct {
	// Kernel is the kernel image (vmlinuz) to boot.
	Kernel string
	// Work receives the initramfs stage, initrd.gz and console.log.
	Work string
	// Busybox is a static busybox (Debian's busybox-static): the guest's
	// shell and tools.
	Busybox string
	// Containerd, Shim and Ctr are Debian's containerd, its
	// containerd-shim-runc-v2 and ctr; their shared libraries (ldd) go
	// into the initramfs too.
	Containerd, Shim, Ctr string
	// Runc is the bundle's runc (containerd's BinaryName).
	Runc string
	// StockKubelet and NokmemKubelet are the kubelets of Kinds.
	StockKubelet, NokmemKubelet string
	// PauseImage and BusyboxImage are docker-archive tarballs written by
	// internal/kubeletnode (WritePauseImage, WriteBusyboxImage).
	PauseImage, BusyboxImage string
	// Bundle, Pub and Verify, when Bundle is set, are the node bundle
	// tarball, its release key and the bundle's verify: the guest then runs
	// `verify run --bundle` under the stock kubelet as the host part does.
	Bundle, Pub, Verify string
	// Pods are the static pods (the host part's three QoS classes).
	Pods []kubeletnode.Pod
	// Rounds is how often the pods are removed and added again (3 when 0).
	Rounds int
	// MemoryMB is the guest's RAM (3072 when 0).
	MemoryMB int
	// Timeout bounds the whole guest run (90 minutes when 0: TCG is slow).
	Timeout time.Duration
	// Qemu is the qemu binary (qemu-system-x86_64 from PATH when empty).
	Qemu string
}

// DefaultPods are the host part's pods (internal/kubeletnode's node test):
// one per QoS class, two busybox containers each, on the host network.
func DefaultPods() []kubeletnode.Pod {
	return []kubeletnode.Pod{
		{Name: "guaranteed", QoS: "Guaranteed", Memory: "64Mi"},
		{Name: "burstable", QoS: "Burstable", Memory: "96Mi"},
		{Name: "besteffort", QoS: "BestEffort"},
	}
}

func (c Config) rounds() int {
	if c.Rounds == 0 {
		return 3
	}
	return c.Rounds
}

// guestRunc is where the guest keeps the bundle's runc (the node's
// binaries are in /opt/node/bin).
const guestRunc = "/opt/node/bin/runc"

// etcFiles are the guest's /etc besides containerd's config: the kubelet
// copies hosts and resolv.conf into host-network pods, cadvisor reads
// machine-id.
var etcFiles = map[string]string{
	"etc/hosts":       "127.0.0.1 localhost guest\n",
	"etc/resolv.conf": "",
	"etc/machine-id":  "6e6f6b6d656d2d6b7562656c65746775\n",
	"etc/passwd":      "root:x:0:0:root:/:/bin/sh\n",
	"etc/group":       "root:x:0:\n",
}

// Assemble writes the initramfs stage into cfg.Work/initramfs and packs it
// (qemuproof.WriteInitramfs) into cfg.Work/initrd.gz, whose path it returns.
func Assemble(ctx context.Context, cfg Config) (string, error) {
	stage := filepath.Join(cfg.Work, "initramfs")
	if err := os.RemoveAll(stage); err != nil {
		return "", err
	}
	files := map[string]string{ // guest path → host file
		"bin/busybox":                     cfg.Busybox,
		"usr/bin/containerd":              cfg.Containerd,
		"usr/bin/containerd-shim-runc-v2": cfg.Shim,
		"usr/bin/ctr":                     cfg.Ctr,
		"usr/bin/runc":                    cfg.Runc,
		"opt/nokmem/kubelet-stock":        cfg.StockKubelet,
		"opt/nokmem/kubelet-nokmem":       cfg.NokmemKubelet,
		"opt/nokmem/images/pause.tar":     cfg.PauseImage,
		"opt/nokmem/images/busybox.tar":   cfg.BusyboxImage,
	}
	if cfg.Bundle != "" {
		files["opt/nokmem/bundle.tar.gz"], files["opt/nokmem/release.pub"], files["opt/nokmem/verify"] = cfg.Bundle, cfg.Pub, cfg.Verify
	}
	for _, bin := range []string{cfg.Containerd, cfg.Shim, cfg.Ctr} {
		libs, err := SharedLibraries(ctx, bin)
		if err != nil {
			return "", err
		}
		for _, l := range libs {
			files[strings.TrimPrefix(l, "/")] = l
		}
	}
	for dst, src := range files {
		if src == "" {
			return "", fmt.Errorf("initramfs: no host file for %s", dst)
		}
		if err := copyFile(src, filepath.Join(stage, dst)); err != nil {
			return "", fmt.Errorf("initramfs: %w", err)
		}
	}
	texts := map[string]string{"etc/containerd/config.toml": "version = 2\n" + kubeletnode.CRIConfig(pauseRef, guestRunc, false)}
	for k, v := range etcFiles {
		texts[k] = v
	}
	pods := cfg.Pods
	if len(pods) == 0 {
		pods = DefaultPods()
	}
	for _, p := range pods {
		texts["opt/nokmem/manifests/"+p.Name+".yaml"] = p.Manifest()
	}
	texts["init"] = Script(len(pods), cfg.rounds())
	for name, text := range texts {
		mode := os.FileMode(0o644)
		if name == "init" {
			mode = 0o755
		}
		if err := writeFile(filepath.Join(stage, name), []byte(text), mode); err != nil {
			return "", err
		}
	}
	for _, d := range []string{"dev", "proc", "newroot", "lib", "lib64"} {
		if err := os.MkdirAll(filepath.Join(stage, d), 0o755); err != nil {
			return "", err
		}
	}
	out := filepath.Join(cfg.Work, "initrd.gz")
	if err := qemuproof.WriteInitramfs(stage, out); err != nil {
		return "", err
	}
	return out, nil
}

// SharedLibraries lists the absolute paths of the shared libraries and the
// program interpreter that ldd reports for bin (none for a static binary).
func SharedLibraries(ctx context.Context, bin string) ([]string, error) {
	out, err := exec.CommandContext(ctx, "ldd", bin).CombinedOutput()
	if err != nil {
		if bytes.Contains(out, []byte("not a dynamic executable")) {
			return nil, nil
		}
		return nil, fmt.Errorf("ldd %s: %w: %s", bin, err, bytes.TrimSpace(out))
	}
	return ParseLdd(bin, out)
}

// ParseLdd reads ldd's output for bin: `name => /path (addr)` and
// `/path (addr)` lines give paths; vdso lines have none; `not found` is an
// error naming the library.
func ParseLdd(bin string, out []byte) ([]string, error) {
	var libs []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.Contains(line, "not found") {
			return nil, fmt.Errorf("ldd %s: %s", bin, line)
		}
		if _, rest, ok := strings.Cut(line, "=>"); ok {
			line = strings.TrimSpace(rest)
		}
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], "/") {
			libs = append(libs, f[0])
		}
	}
	return libs, sc.Err()
}

func copyFile(src, dst string) error {
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", src)
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return writeFile(dst, data, fi.Mode().Perm())
}

func writeFile(p string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, data, mode)
}

// Run assembles the initramfs, boots cfg.Kernel under qemu (TCG, the
// boot of qemuproof, at nice 10: the machine's cores are shared), writes
// the console to cfg.Work/console.log, parses and evaluates it.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	qemu, err := qemuproof.CheckHost(cfg.Kernel, cfg.Qemu, cfg.Work)
	if err != nil {
		return nil, err
	}
	initrd, err := Assemble(ctx, cfg)
	if err != nil {
		return nil, err
	}
	b := qemuproof.Boot{Qemu: qemu, Kernel: cfg.Kernel, Initrd: initrd, MemoryMB: cmp.Or(cfg.MemoryMB, 3072),
		Timeout: cmp.Or(cfg.Timeout, 90*time.Minute), Nice: 10, Console: filepath.Join(cfg.Work, "console.log")}
	var rep *Report
	took, err := b.Run(ctx, func(r io.Reader) (err error) { rep, err = Parse(r); return err })
	if rep != nil {
		rep.Wall = took
	}
	return rep, err
}
