package kubeletguest

import (
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cavaliergopher/cpio"
)

// shParse checks script with busybox's `sh -n` (the guest's shell).
func shParse(t *testing.T, script string) error {
	t.Helper()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatalf("busybox (Debian package busybox-static): %v", err)
	}
	if out, err := exec.Command(bb, "sh", "-n", "-c", script).CombinedOutput(); err != nil {
		return errors.New(err.Error() + ": " + string(out))
	}
	return nil
}

// The generated /init is valid sh, reports every required check and runs
// both kubelets with their own cgroup roots and the pod and round counts
// asked for.
func TestScript(t *testing.T) {
	s := Script(3, 4)
	if err := shParse(t, s); err != nil {
		t.Fatalf("script does not parse: %v", err)
	}
	for _, name := range append(Required(), "kernel-kmem", "slabinfo", "leak") {
		name = strings.TrimPrefix(strings.TrimPrefix(name, "stock-"), "nokmem-")
		if !strings.Contains(s, name+" ") {
			t.Errorf("script reports no %s", name)
		}
	}
	for _, want := range []string{"for k in stock nokmem", "-ge 9 ]", "-ge 3 ]", "-lt 4 ]", "--cgroup-root=/$cg", "--cgroup-driver=cgroupfs",
		"--pod-infra-container-image=" + pauseRef, "NOKMEM-DONE"} {
		if !strings.Contains(s, want) {
			t.Errorf("script lacks %q", want)
		}
	}
	if m := regexp.MustCompile(`@[A-Z]+@`).FindString(s); m != "" {
		t.Errorf("script has an unreplaced placeholder %s", m)
	}
	if err := shParse(t, s+"\nif then\n"); err == nil {
		t.Error("shParse accepted a broken script")
	}
}

func TestParseLdd(t *testing.T) {
	out := []byte(`	linux-vdso.so.1 (0x00007ffd)
	libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f7b)
	/lib64/ld-linux-x86-64.so.2 (0x00007f7b0)
`)
	libs, err := ParseLdd("containerd", out)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(libs, ",") != "/lib/x86_64-linux-gnu/libc.so.6,/lib64/ld-linux-x86-64.so.2" {
		t.Errorf("libs = %v", libs)
	}
	_, err = ParseLdd("containerd", []byte("\tlibseccomp.so.2 => not found\n"))
	if err == nil || !strings.Contains(err.Error(), "libseccomp.so.2") || !strings.Contains(err.Error(), "containerd") {
		t.Errorf("missing library: err = %v", err)
	}
}

// readInitramfs returns the archive's entries by name: file contents, or
// "->target" for symlinks, "dir" for directories.
func readInitramfs(t *testing.T, p string) map[string]string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	r := cpio.NewReader(zr)
	entries := map[string]string{}
	for {
		h, err := r.Next()
		if err == io.EOF {
			return entries
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(r)
		switch {
		case h.Mode&cpio.TypeDir != 0 && h.Mode&cpio.TypeReg == 0:
			entries[h.Name] = "dir"
		default:
			entries[h.Name] = string(body)
		}
	}
}

// The initramfs holds busybox, containerd with its shared libraries, the
// shim, ctr, the bundle's runc, both kubelets, both images, one manifest
// per pod, containerd's config and /init; a missing input is an error
// naming it.
func TestAssemble(t *testing.T) {
	dir := t.TempDir()
	in := func(name string) string {
		p := filepath.Join(dir, "in", name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("content of "+name), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	containerd, err := exec.LookPath("containerd")
	if err != nil {
		t.Fatalf("containerd (Debian package containerd): %v", err)
	}
	cfg := Config{Work: filepath.Join(dir, "work"), Busybox: in("busybox"), Containerd: containerd, Shim: in("shim"), Ctr: in("ctr"),
		Runc: in("runc"), StockKubelet: in("kubelet-stock"), NokmemKubelet: in("kubelet-nokmem"), PauseImage: in("pause.tar"), BusyboxImage: in("busybox.tar"), Rounds: 2}
	initrd, err := Assemble(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := readInitramfs(t, initrd)
	for name, want := range map[string]string{
		"bin/busybox": "content of busybox", "usr/bin/containerd-shim-runc-v2": "content of shim", "usr/bin/ctr": "content of ctr",
		"usr/bin/runc": "content of runc", "opt/nokmem/kubelet-stock": "content of kubelet-stock", "opt/nokmem/kubelet-nokmem": "content of kubelet-nokmem",
		"opt/nokmem/images/pause.tar": "content of pause.tar", "opt/nokmem/images/busybox.tar": "content of busybox.tar", "init": Script(3, 2),
	} {
		if e[name] != want {
			t.Errorf("%s = %.40q, want %.40q", name, e[name], want)
		}
	}
	libs, err := SharedLibraries(context.Background(), containerd)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range append(libs, "usr/bin/containerd") {
		if e[strings.TrimPrefix(l, "/")] == "" {
			t.Errorf("initramfs lacks %s", l)
		}
	}
	for _, p := range DefaultPods() {
		if m := e["opt/nokmem/manifests/"+p.Name+".yaml"]; !strings.Contains(m, `"hostNetwork": true`) {
			t.Errorf("manifest of %s: %q", p.Name, m)
		}
	}
	if c := e["etc/containerd/config.toml"]; !strings.Contains(c, `BinaryName = "/opt/node/bin/runc"`) || !strings.Contains(c, pauseRef) {
		t.Errorf("containerd config: %s", c)
	}
	cfg.NokmemKubelet = filepath.Join(dir, "in", "absent")
	if _, err := Assemble(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "absent") {
		t.Errorf("missing kubelet: err = %v", err)
	}
}

// console builds a guest console log from result lines.
func console(lines ...string) string {
	var b strings.Builder
	b.WriteString("SeaBIOS\nBooting from ROM...\n")
	for _, l := range lines {
		if l == "DONE" {
			b.WriteString("NOKMEM-DONE\r\n")
			continue
		}
		b.WriteString("NOKMEM-RESULT " + l + "\r\n")
	}
	return b.String()
}

func plumbing() []string {
	l := []string{"kernel info 3.10.0-1127.el7src", "containerd-start ok seconds=40", "images ok seconds=3"}
	for _, k := range Kinds {
		l = append(l, k+"-kubelet-start ok seconds=30", k+"-pods ok pods=3 tasks=9", k+"-churn ok rounds=3", k+"-kubelet-stop ok")
	}
	return l
}

func verdict(rep *Report, name string) Verdict {
	for _, v := range rep.Verdicts {
		if v.Name == name {
			return v
		}
	}
	return Verdict{}
}

// On a kernel that activates kmem (3.10), the stock kubelet's pods must
// read slabinfo and leak ids with churn, the nokmem kubelet's must fail
// with EIO and leak none; each defect is caught.
func TestEvaluateKmemKernel(t *testing.T) {
	kmem := "kernel-kmem info before=eio after=active"
	good := append(plumbing(), kmem,
		"stock-slabinfo info cgroups=15 active=15 empty=0 eio=0 other=0", "stock-leak info ids_before=12 ids_after=48",
		"nokmem-slabinfo info cgroups=15 active=0 empty=0 eio=15 other=0", "nokmem-leak info ids_before=48 ids_after=48", "DONE")
	rep, err := Parse(strings.NewReader(console(good...)))
	if err != nil {
		t.Fatalf("good run: %v", err)
	}
	if !rep.KmemKernel || verdict(rep, "stock-leak").Status != "ok" || !strings.Contains(verdict(rep, "stock-leak").Detail, "36 leaked") {
		t.Errorf("stock-leak = %+v (kmem kernel %v)", verdict(rep, "stock-leak"), rep.KmemKernel)
	}
	for _, c := range []defect{
		{"stock kubelet without kmem", "stock-slabinfo info cgroups=15 active=15 empty=0 eio=0", "stock-slabinfo info cgroups=15 active=0 empty=0 eio=15", "stock-slabinfo: want kmem active"},
		{"stock churn leaks nothing", "stock-leak info ids_before=12 ids_after=48", "stock-leak info ids_before=12 ids_after=12", "stock-leak: want leaked ids to grow"},
		{"nokmem pod with kmem", "nokmem-slabinfo info cgroups=15 active=0 empty=0 eio=15", "nokmem-slabinfo info cgroups=15 active=1 empty=0 eio=14", "nokmem-slabinfo: want EIO on all"},
		{"nokmem churn leaks", "nokmem-leak info ids_before=48 ids_after=48", "nokmem-leak info ids_before=48 ids_after=60", "nokmem-leak: 12 leaked"},
		{"no pods", "nokmem-slabinfo info cgroups=15 active=0 empty=0 eio=15", "nokmem-slabinfo info cgroups=0 active=0 empty=0 eio=0", "no memory cgroups"},
		{"pods never ran", "stock-pods ok pods=3 tasks=9", "stock-pods fail pods=1 tasks=2", "stock-pods: pods=1"},
		{"no figures", "nokmem-leak info ids_before=48 ids_after=48", "nokmem-other info x", "nokmem-kmem: slabinfo or leak figures not reported"},
		{"guest died", "DONE", "boot info", "did not reach its end"},
		{"no probe", kmem, "boot info", "kernel-kmem: not reported"},
	} {
		expectCaught(t, good, c)
	}
}

// On a kernel that ignores kmem limit writes (6.1: slabinfo reads empty),
// the kmem checks are n/a and the plumbing decides; a missing plumbing
// check still fails.
func TestEvaluateModernKernel(t *testing.T) {
	lines := append(plumbing(), "kernel-kmem info before=empty after=empty",
		"stock-slabinfo info cgroups=15 active=0 empty=15 eio=0 other=0", "stock-leak info ids_before=0 ids_after=0",
		"nokmem-slabinfo info cgroups=15 active=0 empty=15 eio=0 other=0", "nokmem-leak info ids_before=0 ids_after=0", "DONE")
	rep, err := Parse(strings.NewReader(console(lines...)))
	if err != nil {
		t.Fatal(err)
	}
	if rep.KmemKernel || verdict(rep, "stock-slabinfo").Status != "n/a" || verdict(rep, "nokmem-leak").Status != "n/a" {
		t.Errorf("verdicts = %+v", rep.Verdicts)
	}
	_, err = Parse(strings.NewReader(console(append(lines[:3:3], lines[4:]...)...)))
	if !errors.Is(err, ErrGuest) || !strings.Contains(err.Error(), "stock-kubelet-start: not reported") {
		t.Errorf("without stock-kubelet-start: err = %v", err)
	}
}

func TestCheckSums(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "kubelet"), []byte("k"), 0o644)
	// sha256("k")
	sums := "8254c329a92850f6d539dd376f4816ee2764517da5e0235514af433164480d7a  kubelet\n"
	os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte(sums), 0o644)
	if err := checkSums(filepath.Join(dir, "SHA256SUMS"), "kubelet"); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "kubelet"), []byte("x"), 0o644)
	if err := checkSums(filepath.Join(dir, "SHA256SUMS"), "kubelet"); err == nil || !strings.Contains(err.Error(), "kubelet") {
		t.Errorf("changed kubelet: err = %v", err)
	}
}

// With the migration part, verify run, the containers and verify assert
// must pass, and on a kmem kernel the stock tree is kmem-active before and
// every migrated cgroup EIO after; each defect is caught.
func TestEvaluateMigration(t *testing.T) {
	good := append(plumbing(), "kernel-kmem info before=eio after=active",
		"stock-slabinfo info cgroups=15 active=15 eio=0", "stock-leak info ids_before=12 ids_after=48",
		"nokmem-slabinfo info cgroups=15 active=0 eio=15", "nokmem-leak info ids_before=48 ids_after=48",
		"verify info enabled", "migrate-pods ok pods=3 tasks=9", "migrate-slabinfo-before info cgroups=15 active=15 eio=0",
		"verify-run ok exit=0 outcome:migrated", "verify-containers ok same=9", "migrate-slabinfo-after info cgroups=15 active=0 eio=15",
		"verify-assert ok", "DONE")
	if _, err := Parse(strings.NewReader(console(good...))); err != nil {
		t.Fatalf("good run: %v", err)
	}
	for _, c := range []defect{
		{"verify run failed", "verify-run ok", "verify-run fail", "verify-run: exit=0"},
		{"a container restarted", "verify-containers ok same=9", "verify-containers fail -abc 12 RUNNING +abc 99 RUNNING", "verify-containers: -abc"},
		{"migrated tree still kmem", "migrate-slabinfo-after info cgroups=15 active=0 eio=15", "migrate-slabinfo-after info cgroups=15 active=2 eio=13", "migrate-slabinfo-after: want eio on all"},
		{"no assert", "verify-assert ok", "boot info", "verify-assert: not reported"},
	} {
		expectCaught(t, good, c)
	}
}

// defect plants one defect in a good console: the line starting with
// replace starts with with instead; Parse must then fail naming want.
type defect struct{ name, replace, with, want string }

// expectCaught checks that Parse fails with ErrGuest and want for good
// with the defect c planted.
func expectCaught(t *testing.T, good []string, c defect) {
	t.Helper()
	lines := append([]string(nil), good...)
	for i, l := range lines {
		if strings.HasPrefix(l, c.replace) {
			lines[i] = c.with + strings.TrimPrefix(l, c.replace)
		}
	}
	_, err := Parse(strings.NewReader(console(lines...)))
	if !errors.Is(err, ErrGuest) || !strings.Contains(err.Error(), c.want) {
		t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
	}
}
