// Package qemuproof runs real runc containers on a given kernel image (the
// RHEL/CentOS 7.8 kernel 3.10.0-1127 is the one that matters) booted under
// qemu-system-x86_64 with TCG, as docs/memcg-v1-semantics.md §3a describes:
// a gzip'ed newc initramfs holds busybox (static), the runc under test, OCI
// bundles whose rootfs is that busybox, and an /init script that takes its
// console from devtmpfs, switches to a tmpfs root (pivot_root cannot leave
// an initramfs), mounts the cgroup v1 controllers, runs the runc commands and prints one NOKMEM-RESULT line per
// check on the serial console, then powers off. The host parses those lines.
//
// Checks: run (detached), state, ps, exec, a seccomp rule refusing mkdir
// holds for exec (EPERM where a write succeeds), events --stats, update --memory, pause/resume, kill,
// delete; memory.kmem.slabinfo of every container cgroup (and of their
// parent) fails with EIO, i.e. kmem accounting was never activated on 3.10;
// and N short-lived containers leak no memcg ID (the kmemcg ids of the
// per-memcg slab cache aliases in /sys/kernel/slab, §1g, before and after).
// A positive control then activates kmem on a cgroup of its own by hand, as
// the old runc and kubelet do, and must see slabinfo become readable and the
// kmemcg id count grow after its rmdir: it shows on the booted kernel that
// both detectors fire when kmem is on.
package qemuproof

import (
	"bufio"
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/cavaliergopher/cpio"

	"github.com/nokmem/nokmem/internal/runcproof"
)

// Config is one proof run.
type Config struct {
	// Kernel is the kernel image (vmlinuz) to boot.
	Kernel string
	// Runc is the static runc under test; Busybox is a static busybox
	// (Debian's busybox-static), the initramfs's shell and the rootfs.
	Runc, Busybox string
	// Work receives the initramfs and the console log.
	Work string
	// Containers is how many short-lived containers the leak check runs (50).
	Containers int
	// MemoryMB is the guest's RAM (1024 when 0).
	MemoryMB int
	// Timeout bounds the boot (20 minutes when 0: TCG is slow).
	Timeout time.Duration
	// Qemu is the qemu binary (qemu-system-x86_64 from PATH when empty).
	Qemu string
}

// ResultPrefix starts every result line the guest prints.
const ResultPrefix = "NOKMEM-RESULT "

// DoneLine is the guest's last line when the script ran to its end.
const DoneLine = "NOKMEM-DONE"

// cgroupParent is the cgroup (under each controller's root) that holds the
// proof's containers.
const cgroupParent = "nokmem"

// Bundles the initramfs holds: a long-running container for the command
// checks and a short-lived one run Containers times for the leak check.
var bundles = []struct {
	name string
	args []string
}{
	{"long", []string{"sleep", "1000"}},
	{"short", []string{"sh", "-c", "echo a > /dev/shm/a; ls /dev/shm > /dev/null; rm /dev/shm/a"}},
}

// applets are linked in each container's /bin besides runcproof.Bundle's.
var applets = []string{"ls", "rm", "cat", "mkdir", "echo"}

// Script is the initramfs's /init: stage one copies the payload to a tmpfs
// and switch_roots into it (runc's pivot_root needs a real mount as root);
// stage two (run with the argument "stage2") runs the checks.
func Script(containers int) string {
	return strings.NewReplacer("@N@", fmt.Sprint(containers), "@P@", cgroupParent, "@R@", strings.TrimSpace(ResultPrefix), "@DONE@", DoneLine).Replace(initScript)
}

const initScript = `#!/bin/busybox sh
# nokmem qemu proof (internal/runcproof/qemuproof): real runc containers on this kernel.
/bin/busybox --install -s /bin
export PATH=/bin
if [ "$1" != stage2 ]; then
	# The archive has no device nodes: the console comes from devtmpfs.
	mount -t devtmpfs dev /dev
	exec </dev/console >/dev/console 2>&1
	mount -t proc proc /proc
	mkdir -p /newroot
	mount -t tmpfs -o size=512m root /newroot
	cp -a /bin /bundles /init /newroot/
	mkdir -p /newroot/proc /newroot/sys /newroot/dev /newroot/run /newroot/tmp
	umount /proc
	exec switch_root /newroot /init stage2
fi
r() { echo "@R@ $*"; }
step() { # step NAME COMMAND...: ok when the command exits 0
	name=$1; shift
	out=$("$@" 2>&1 </dev/null); rc=$?
	if [ $rc = 0 ]; then r "$name" ok; else r "$name" fail "rc=$rc $(echo $out | cut -c1-300)"; fi
}
refused() { # refused NAME COMMAND...: ok when the command fails with EPERM (the seccomp rule)
	name=$1; shift
	out=$("$@" 2>&1 </dev/null); rc=$?
	case "$rc:$out" in
	0:*) r "$name" fail "exit 0: $(echo $out | cut -c1-200)" ;;
	*"not permitted"*) r "$name" ok "rc=$rc $(echo $out | cut -c1-200)" ;;
	*) r "$name" fail "rc=$rc, not EPERM: $(echo $out | cut -c1-200)" ;;
	esac
}
slab_eio() { # slab_eio NAME CGROUP: reading its memory.kmem.slabinfo fails with EIO
	out=$(cat /sys/fs/cgroup/memory/$2/memory.kmem.slabinfo 2>&1); rc=$?
	case "$rc:$out" in
	0:*) r "$1" fail "read $(echo $out | wc -c) bytes: kmem accounting is active" ;;
	*Input/output*) r "$1" ok EIO ;;
	*) r "$1" fail "rc=$rc $out" ;;
	esac
}
wait_status() { # wait_status ID STATUS: poll runc state for 60 s
	i=0
	while [ $i -lt 600 ]; do
		runc state "$1" 2>/dev/null | grep -q "\"status\": \"$2\"" && return 0
		sleep 0.1; i=$((i+1))
	done
	return 1
}
kmemcg_ids() { # distinct kmemcg ids of the per-memcg slab cache aliases (§1g)
	ls /sys/kernel/slab 2>/dev/null | grep '(' | sed 's/.*(\([0-9]*\):.*/\1/' | sort -u | wc -l
}
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm && mount -t devpts devpts /dev/pts && mount -t tmpfs shm /dev/shm
mount -t tmpfs run /run
mount -t tmpfs tmp /tmp
mount -t tmpfs cgroup /sys/fs/cgroup
for c in $(awk 'NR > 1 && $4 == 1 { print $1 }' /proc/cgroups); do
	mkdir -p /sys/fs/cgroup/$c
	mount -t cgroup -o $c cgroup /sys/fs/cgroup/$c || r mount-$c fail
done
echo 1 > /sys/fs/cgroup/memory/memory.use_hierarchy
r kernel info "$(uname -r)"
r runc info "$(runc --version | tr '\n' ' ')"
mkdir -p /sys/fs/cgroup/memory/@P@
slab_eio slabinfo-parent-before @P@

run_detached() { # the container must not hold step's output pipe
	runc run -d --bundle /bundles/long long </dev/null >/tmp/run.log 2>&1 || { cat /tmp/run.log; return 1; }
}
step run run_detached
step state-running wait_status long running
step ps runc ps long
step exec runc exec long true
step exec-write runc exec long sh -c "echo x > /dev/shm/y"
refused seccomp-mkdir-refused runc exec long mkdir /dev/shm/x
step events runc events --stats long
step update runc update --memory 100663296 long
step update-limit grep -qx 100663296 /sys/fs/cgroup/memory/@P@/long/memory.limit_in_bytes
slab_eio slabinfo-long @P@/long
step pause runc pause long
step state-paused wait_status long paused
step resume runc resume long
step state-resumed wait_status long running
step kill runc kill long KILL
step state-stopped wait_status long stopped
step delete runc delete long
step cgroup-removed test ! -d /sys/fs/cgroup/memory/@P@/long

before=$(kmemcg_ids)
fails=0; eio=0; n=0
while [ $n -lt @N@ ]; do
	n=$((n+1))
	if runc create --bundle /bundles/short s$n </dev/null >/dev/null 2>&1; then
		cat /sys/fs/cgroup/memory/@P@/short/memory.kmem.slabinfo >/dev/null 2>/tmp/err || true
		grep -q Input/output /tmp/err && eio=$((eio+1))
		runc start s$n </dev/null >/dev/null 2>&1 && wait_status s$n stopped && runc delete s$n >/dev/null 2>&1 || fails=$((fails+1))
	else
		fails=$((fails+1))
	fi
done
after=$(kmemcg_ids)
if [ $fails = 0 ]; then r containers ok "n=@N@"; else r containers fail "n=@N@ failed=$fails"; fi
if [ $eio = @N@ ]; then r slabinfo-short ok "EIO in $eio of @N@"; else r slabinfo-short fail "EIO in $eio of @N@"; fi
if [ "$before" = "$after" ]; then r leak ok "kmemcg ids before=$before after=$after leaked=0"; else r leak fail "kmemcg ids before=$before after=$after"; fi
r kmem-usage info "$(cat /sys/fs/cgroup/memory/@P@/memory.kmem.usage_in_bytes)"
slab_eio slabinfo-parent-after @P@

# Positive control, after the leak count above: activate kmem by hand the way
# runc rc2-rc93 and kubelet <= 1.21 do (a memory.kmem.limit_in_bytes write on a
# new cgroup), so the two detectors above are seen to fire on this kernel:
# slabinfo becomes readable, and the memcg ID outlives rmdir while slab
# objects charged to it (tmpfs dentries and inodes) are still alive.
ctl=/sys/fs/cgroup/memory/@P@-kmem-control
mkdir $ctl
echo 1073741824 > $ctl/memory.kmem.limit_in_bytes
i=0
while [ $i -lt 5 ]; do # per-memcg caches are created asynchronously after the first charges
	sh -c "echo \$\$ > $ctl/tasks; mkdir -p /tmp/kmem-control/$i; j=0; while [ \$j -lt 50 ]; do echo x > /tmp/kmem-control/$i/f\$j; j=\$((j+1)); done; ls -R /bin >/dev/null"
	sleep 0.5; i=$((i+1))
done
out=$(cat $ctl/memory.kmem.slabinfo 2>&1); rc=$?
if [ $rc = 0 ]; then r control-kmem-slabinfo ok "kmem-active cgroup: slabinfo readable, $(echo "$out" | wc -l) lines, kmem usage $(cat $ctl/memory.kmem.usage_in_bytes)"; else r control-kmem-slabinfo fail "rc=$rc $out"; fi
rmdir $ctl
sleep 1
gone=$(kmemcg_ids)
if [ "$gone" -gt "$after" ]; then r control-kmem-leak ok "kmemcg ids after=$after, after rmdir of the kmem-active cgroup=$gone"; else r control-kmem-leak fail "kmemcg ids after=$after, after rmdir of the kmem-active cgroup=$gone: the leak check cannot see a leak on this kernel"; fi
r num-cgroups info "$(grep '^memory' /proc/cgroups)"
echo @DONE@
poweroff -f
`

// Assemble writes the initramfs (gzip'ed newc cpio) for cfg into
// cfg.Work/initrd.gz and returns its path: /init, /bin/busybox, /bin/runc
// and one OCI bundle per container kind, made with the runc under test's
// own `runc spec` (runcproof.Bundle), with a memory limit, a seccomp rule
// refusing mkdir and mkdirat, and a cgroup under cgroupParent.
func Assemble(ctx context.Context, cfg Config) (string, error) {
	stage := filepath.Join(cfg.Work, "initramfs")
	if err := os.RemoveAll(stage); err != nil {
		return "", err
	}
	for _, b := range bundles {
		dir := filepath.Join(stage, "bundles", b.name)
		spec := runcproof.Spec{CgroupsPath: "/" + cgroupParent + "/" + b.name, MemoryLimit: 64 << 20, Args: b.args}
		if err := runcproof.Bundle(ctx, cfg.Runc, cfg.Busybox, dir, spec); err != nil {
			return "", fmt.Errorf("initramfs: %w", err)
		}
		if err := finishBundle(dir); err != nil {
			return "", fmt.Errorf("initramfs: bundle %s: %w", b.name, err)
		}
	}
	for _, d := range []string{"bin", "dev", "proc", "newroot"} {
		if err := os.MkdirAll(filepath.Join(stage, d), 0o755); err != nil {
			return "", err
		}
	}
	for dst, src := range map[string]string{"bin/busybox": cfg.Busybox, "bin/runc": cfg.Runc} {
		if err := copyFile(src, filepath.Join(stage, dst), 0o755); err != nil {
			return "", fmt.Errorf("initramfs: %w", err)
		}
	}
	if err := os.WriteFile(filepath.Join(stage, "init"), []byte(Script(cfg.Containers)), 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(cfg.Work, "initrd.gz")
	if err := WriteInitramfs(stage, out); err != nil {
		return "", err
	}
	return out, nil
}

// finishBundle adds the applets the checks use and the seccomp rule.
func finishBundle(dir string) error {
	for _, a := range applets {
		if err := os.Symlink("busybox", filepath.Join(dir, "rootfs", "bin", a)); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	p := filepath.Join(dir, "config.json")
	raw, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	linux, ok := cfg["linux"].(map[string]any)
	if !ok {
		return fmt.Errorf("%s: no linux section", p)
	}
	linux["seccomp"] = map[string]any{
		"defaultAction": "SCMP_ACT_ALLOW",
		"architectures": []string{"SCMP_ARCH_X86_64"},
		"syscalls":      []any{map[string]any{"names": []string{"mkdir", "mkdirat"}, "action": "SCMP_ACT_ERRNO"}},
	}
	out, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(p, out, 0o644)
}

// WriteInitramfs packs the tree at dir into a gzip'ed newc cpio archive at
// out, the format the kernel unpacks into its rootfs: entries sorted by
// path, owned by root, mtime 0, so equal trees give equal archives.
func WriteInitramfs(dir, out string) error {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("initramfs %s: %w", dir, err)
	}
	sort.Strings(paths)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	w := cpio.NewWriter(zw)
	for _, p := range paths {
		if err := addEntry(w, dir, p); err != nil {
			return fmt.Errorf("initramfs %s: %w", p, err)
		}
	}
	if err := w.Close(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return os.WriteFile(out, buf.Bytes(), 0o644)
}

func addEntry(w *cpio.Writer, root, p string) error {
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	rel, err := filepath.Rel(root, p)
	if err != nil {
		return err
	}
	h := &cpio.Header{Name: filepath.ToSlash(rel), Mode: cpio.FileMode(fi.Mode().Perm()), ModTime: time.Unix(0, 0)}
	var body []byte
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(p)
		if err != nil {
			return err
		}
		h.Mode, h.Linkname, body = cpio.TypeSymlink|0o777, target, []byte(target)
	case fi.IsDir():
		h.Mode |= cpio.TypeDir
	case fi.Mode().IsRegular():
		h.Mode |= cpio.TypeReg
		if body, err = os.ReadFile(p); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unsupported file type %s", fi.Mode().Type())
	}
	h.Size = int64(len(body))
	if err := w.WriteHeader(h); err != nil {
		return err
	}
	_, err = w.Write(body)
	return err
}

func copyFile(src, dst string, mode fs.FileMode) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, data, mode)
}

// Result is one check the guest reported.
type Result struct {
	Name   string
	Status string // ok, fail or info
	Detail string
}

// Report is a parsed console log.
type Report struct {
	Results []Result
	// Done: the script reached its end.
	Done bool
}

// Get returns the named result, or nil.
func (r *Report) Get(name string) *Result {
	for i := range r.Results {
		if r.Results[i].Name == name {
			return &r.Results[i]
		}
	}
	return nil
}

// Required are the checks a passing run must report as ok.
var Required = []string{
	"slabinfo-parent-before", "run", "state-running", "ps", "exec", "exec-write", "seccomp-mkdir-refused", "events",
	"update", "update-limit", "slabinfo-long", "pause", "state-paused", "resume", "state-resumed",
	"kill", "state-stopped", "delete", "cgroup-removed", "containers", "slabinfo-short", "leak",
	"slabinfo-parent-after", "control-kmem-slabinfo", "control-kmem-leak",
}

// ErrProof is returned when the guest's checks did not all pass.
var ErrProof = errors.New("qemu proof failed")

// KmemChecks are the required checks that fail for a runc that activates
// kmem on the memory cgroups it creates (unpatched rc5 writes
// memory.kmem.limit_in_bytes): its container cgroups read slabinfo, and
// every deleted container keeps its memcg ID.
var KmemChecks = []string{"slabinfo-long", "slabinfo-short", "leak"}

// ExpectKmemCaught checks the run of a runc that activates kmem: every
// check in KmemChecks failed, every other required check passed (so the
// failures are the kmem ones and not a broken boot or runc), and the
// script reached its end. It returns nil when the proof caught the runc.
func ExpectKmemCaught(rep *Report) error {
	if rep == nil {
		return errors.New("no report")
	}
	kmem := map[string]bool{}
	for _, name := range KmemChecks {
		kmem[name] = true
	}
	var bad []string
	for _, name := range Required {
		res := rep.Get(name)
		switch {
		case res == nil:
			bad = append(bad, name+": not reported")
		case kmem[name] && res.Status != "fail":
			bad = append(bad, fmt.Sprintf("%s: %s (%s), but a kmem-activating runc must fail it", name, res.Status, res.Detail))
		case !kmem[name] && res.Status != "ok":
			bad = append(bad, fmt.Sprintf("%s: %s (%s)", name, res.Status, res.Detail))
		}
	}
	if !rep.Done {
		bad = append(bad, "the guest script did not reach its end ("+DoneLine+")")
	}
	if len(bad) > 0 {
		return fmt.Errorf("the proof did not catch the kmem-activating runc as expected:\n  %s", strings.Join(bad, "\n  "))
	}
	return nil
}

// Parse reads a console log. Its error names every failed or missing
// check and says whether the script ended.
func Parse(r io.Reader) (*Report, error) {
	rep := &Report{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(line) == DoneLine {
			rep.Done = true
			continue
		}
		_, rest, ok := strings.Cut(line, ResultPrefix)
		if !ok {
			continue
		}
		f := strings.SplitN(rest, " ", 3)
		if len(f) < 2 {
			continue
		}
		res := Result{Name: f[0], Status: f[1]}
		if len(f) == 3 {
			res.Detail = f[2]
		}
		rep.Results = append(rep.Results, res)
	}
	if err := sc.Err(); err != nil {
		return rep, err
	}
	var bad []string
	for _, res := range rep.Results {
		if res.Status == "fail" {
			bad = append(bad, fmt.Sprintf("%s failed: %s", res.Name, res.Detail))
		}
	}
	for _, name := range Required {
		if rep.Get(name) == nil {
			bad = append(bad, name+": not reported")
		}
	}
	if !rep.Done {
		bad = append(bad, "the guest script did not reach its end ("+DoneLine+")")
	}
	if len(bad) > 0 {
		return rep, fmt.Errorf("%w:\n  %s", ErrProof, strings.Join(bad, "\n  "))
	}
	return rep, nil
}

// Run assembles the initramfs, boots cfg.Kernel under qemu (TCG), writes
// the console to cfg.Work/console.log and parses it.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	qemu, err := CheckHost(cfg.Kernel, cfg.Qemu, cfg.Work)
	if err != nil {
		return nil, err
	}
	initrd, err := Assemble(ctx, cfg)
	if err != nil {
		return nil, err
	}
	b := Boot{Qemu: qemu, Kernel: cfg.Kernel, Initrd: initrd, MemoryMB: cmp.Or(cfg.MemoryMB, 1024),
		Timeout: cmp.Or(cfg.Timeout, 20*time.Minute), Console: filepath.Join(cfg.Work, "console.log")}
	var rep *Report
	_, err = b.Run(ctx, func(r io.Reader) (err error) { rep, err = Parse(r); return err })
	return rep, err
}
