// Package runcproof shows with a real runc binary whether it activates
// kernel-memory accounting: it lays out an OCI bundle whose rootfs is
// Debian's static busybox, runs runc under strace, and reads back every write
// runc made to a memory.kmem.limit_in_bytes file. On kernels where that write
// is a no-op (4.6 and later) the file's value cannot tell, so the write
// itself is the evidence.
package runcproof

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// KmemLimitFile is the file whose first non-(-1) write turns kmem accounting
// on for a cgroup on 3.x kernels.
const KmemLimitFile = "memory.kmem.limit_in_bytes"

// Write is one write(2) runc made to a memory.kmem.limit_in_bytes file.
type Write struct {
	// Path is the file written, as strace -y resolved the descriptor.
	Path string
	// Value is the bytes written.
	Value string
}

// Spec is what the container asks for.
type Spec struct {
	// CgroupsPath is linux.cgroupsPath, e.g. "/nokmem-test-ab12/ctr".
	CgroupsPath string
	// MemoryLimit is linux.resources.memory.limit in bytes (must be set:
	// without any memory setting runc does not touch the memory cgroup).
	MemoryLimit int64
	// KernelLimit is linux.resources.memory.kernel in bytes; 0 leaves it out.
	KernelLimit int64
	// Args is the container's process.
	Args []string
}

// Bundle lays out an OCI bundle in dir: rootfs/bin/busybox (copied from
// busybox) with sh and sleep links, and a config.json made by `runc spec`
// and then changed to run spec.Args without a terminal, in spec's cgroup,
// with spec's memory limits.
func Bundle(ctx context.Context, runc, busybox, dir string, spec Spec) error {
	bin := filepath.Join(dir, "rootfs", "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return fmt.Errorf("bundle rootfs: %w", err)
	}
	data, err := os.ReadFile(busybox)
	if err != nil {
		return fmt.Errorf("bundle rootfs: %w", err)
	}
	if err := os.WriteFile(filepath.Join(bin, "busybox"), data, 0o755); err != nil {
		return fmt.Errorf("bundle rootfs: %w", err)
	}
	for _, applet := range []string{"sh", "sleep", "true"} {
		if err := os.Symlink("busybox", filepath.Join(bin, applet)); err != nil {
			return fmt.Errorf("bundle rootfs: %w", err)
		}
	}
	cmd := exec.CommandContext(ctx, runc, "spec")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s spec in %s: %w: %s", runc, dir, err, bytes.TrimSpace(out))
	}
	cfgPath := filepath.Join(dir, "config.json")
	raw, err := os.ReadFile(cfgPath)
	if err != nil {
		return fmt.Errorf("bundle config: %w", err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return fmt.Errorf("parse %s: %w", cfgPath, err)
	}
	process, ok1 := cfg["process"].(map[string]any)
	linux, ok2 := cfg["linux"].(map[string]any)
	if !ok1 || !ok2 {
		return fmt.Errorf("%s: `runc spec` wrote no process or linux section", cfgPath)
	}
	process["terminal"] = false
	process["args"] = spec.Args
	linux["cgroupsPath"] = spec.CgroupsPath
	resources, _ := linux["resources"].(map[string]any)
	if resources == nil {
		resources = map[string]any{}
		linux["resources"] = resources
	}
	memory := map[string]any{"limit": spec.MemoryLimit}
	if spec.KernelLimit != 0 {
		memory["kernel"] = spec.KernelLimit
	}
	resources["memory"] = memory
	out, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", cfgPath, err)
	}
	if err := os.WriteFile(cfgPath, out, 0o644); err != nil {
		return fmt.Errorf("bundle config: %w", err)
	}
	return nil
}

// Trace is a runc command running under `strace -f -y -e trace=write`.
// strace follows every process runc starts, so it ends only when the
// container's init has exited too.
type Trace struct {
	cmd *exec.Cmd
	log string
	out *os.File
}

// StartTraced starts `runc args...` under strace; logDir receives strace's
// log and the command's output. The command's stdio are files, not pipes,
// so a container process that inherits them cannot keep Wait from returning.
func StartTraced(ctx context.Context, strace, logDir, runc string, args ...string) (*Trace, error) {
	tr := &Trace{log: filepath.Join(logDir, "strace.log")}
	out, err := os.Create(filepath.Join(logDir, "output.log"))
	if err != nil {
		return nil, fmt.Errorf("trace %s: %w", runc, err)
	}
	tr.out = out
	sargs := append([]string{"-f", "-y", "-qq", "-s", "64", "-e", "trace=write", "-o", tr.log, runc}, args...)
	tr.cmd = exec.CommandContext(ctx, strace, sargs...)
	tr.cmd.Stdout, tr.cmd.Stderr = out, out
	if err := tr.cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("start %s under %s: %w", runc, strace, err)
	}
	return tr, nil
}

// Wait waits for strace (and so for every process it followed) to exit and
// returns the writes to kmem limit files, in order.
func (tr *Trace) Wait() ([]Write, error) {
	werr := tr.cmd.Wait()
	cerr := tr.out.Close()
	if werr != nil {
		out, _ := os.ReadFile(tr.out.Name())
		return nil, fmt.Errorf("%s: %w: %s", strings.Join(tr.cmd.Args, " "), werr, bytes.TrimSpace(out))
	}
	if cerr != nil {
		return nil, fmt.Errorf("trace output: %w", cerr)
	}
	return tr.Writes(KmemLimitFile)
}

// Writes returns the writes the traced processes made to files named file
// (e.g. memory.limit_in_bytes: a proof that sees those sees kmem writes
// too), in order. Call it after Wait.
func (tr *Trace) Writes(file string) ([]Write, error) {
	f, err := os.Open(tr.log)
	if err != nil {
		return nil, fmt.Errorf("read strace log: %w", err)
	}
	defer f.Close()
	return FileWrites(f, file)
}

// writeLine matches strace -y output such as
// `1234 write(7</sys/fs/cgroup/memory/x/memory.kmem.limit_in_bytes>, "-1", 2) = 2`.
var writeLine = regexp.MustCompile(`write\(\d+<([^>]*)>, ("(?:[^"\\]|\\.)*")`)

// KmemWrites parses an strace -y log and returns the writes to kmem limit files, in order.
func KmemWrites(r io.Reader) ([]Write, error) { return FileWrites(r, KmemLimitFile) }

// FileWrites parses an strace -y log and returns the writes to files named
// file (in any directory), in order.
func FileWrites(r io.Reader, file string) ([]Write, error) {
	var ws []Write
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		m := writeLine.FindStringSubmatch(sc.Text())
		if m == nil || filepath.Base(m[1]) != file {
			continue
		}
		v, err := strconv.Unquote(m[2])
		if err != nil {
			return nil, fmt.Errorf("strace line %q: %w", sc.Text(), err)
		}
		ws = append(ws, Write{Path: m[1], Value: v})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read strace log: %w", err)
	}
	return ws, nil
}
