package qemuproof

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// Boot is one guest run of docs/memcg-v1-semantics.md §3a: qemu (TCG)
// boots Kernel with Initrd and writes the console to Console until the
// guest powers off or Timeout passes. runc:proveKernel and the kubelet
// guest (internal/kubeletguest) boot this way.
type Boot struct {
	// Qemu is the qemu binary (qemu-system-x86_64 from PATH when empty).
	Qemu           string
	Kernel, Initrd string
	MemoryMB       int
	Timeout        time.Duration
	// Nice runs qemu under `nice -n Nice` when above 0 (TCG keeps a core
	// busy on a shared machine).
	Nice int
	// Console is where the console log is written.
	Console string
}

// CheckHost checks what a boot needs before an initramfs is assembled for
// it: the kernel image and qemu. It returns the qemu binary to use and
// makes the work directory.
func CheckHost(kernel, qemu, work string) (string, error) {
	if _, err := os.Stat(kernel); err != nil {
		return "", fmt.Errorf("kernel image: %w", err)
	}
	if qemu == "" {
		qemu = "qemu-system-x86_64"
	}
	if _, err := exec.LookPath(qemu); err != nil {
		return "", fmt.Errorf("%s: %w (Debian package qemu-system-x86)", qemu, err)
	}
	return qemu, os.MkdirAll(work, 0o755)
}

// Args is the qemu command line of §3a.
func (b Boot) Args() []string {
	return []string{"-accel", "tcg", "-m", strconv.Itoa(b.MemoryMB), "-smp", "1", "-nographic", "-no-reboot",
		"-kernel", b.Kernel, "-initrd", b.Initrd, "-append", "console=ttyS0 quiet panic=-1"}
}

// Run boots the guest, then hands the console log to parse. It returns
// the time qemu ran; the error names qemu and the console log when qemu
// failed or parse did.
func (b Boot) Run(ctx context.Context, parse func(io.Reader) error) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, b.Timeout)
	defer cancel()
	log, err := os.Create(b.Console)
	if err != nil {
		return 0, err
	}
	defer log.Close()
	name, args := b.Qemu, b.Args()
	if b.Nice > 0 {
		name, args = "nice", append([]string{"-n", strconv.Itoa(b.Nice), b.Qemu}, args...)
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = log, log
	start := time.Now()
	runErr := cmd.Run()
	took := time.Since(start)
	if _, err := log.Seek(0, io.SeekStart); err != nil {
		return took, err
	}
	perr := parse(log)
	if runErr != nil {
		return took, errors.Join(fmt.Errorf("%s (console: %s): %w", filepath.Base(b.Qemu), b.Console, runErr), perr)
	}
	if perr != nil {
		return took, fmt.Errorf("%w (console: %s)", perr, b.Console)
	}
	return took, nil
}
