package qemuproof

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cavaliergopher/cpio"
)

// fakeRunc answers `runc spec` with a minimal config.json, as runc's own
// does (the parts runcproof.Bundle edits).
const fakeRunc = `#!/bin/sh
[ "$1" = spec ] || exit 1
cat > config.json <<'END'
{"ociVersion": "1.2.1", "process": {"terminal": true, "args": ["sh"]}, "root": {"path": "rootfs", "readonly": true}, "linux": {"namespaces": [{"type": "mount"}]}}
END
`

func writeExec(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// shParse checks script with `sh -n` (busybox's sh when there is one, the
// shell the guest runs).
func shParse(t *testing.T, script string) error {
	t.Helper()
	var cmd *exec.Cmd
	if bb, err := exec.LookPath("busybox"); err == nil {
		cmd = exec.Command(bb, "sh", "-n", "-c", script)
	} else {
		cmd = exec.Command("sh", "-n", "-c", script)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return errors.New(err.Error() + ": " + string(out))
	}
	return nil
}

// The generated /init is valid sh and runs every required check with the
// container count asked for.
func TestScript(t *testing.T) {
	s := Script(50)
	for _, name := range Required {
		if !strings.Contains(s, " "+name+" ") {
			t.Errorf("script has no check %s", name)
		}
	}
	for _, want := range []string{"while [ $n -lt 50 ]", "memory.kmem.slabinfo", "exec switch_root /newroot /init stage2", "exec </dev/console", DoneLine} {
		if !strings.Contains(s, want) {
			t.Errorf("script lacks %q", want)
		}
	}
	// The kmem-active control cgroup must come after the leak count, or it
	// would be counted as a leak of the containers under test.
	after, control := strings.Index(s, "after=$(kmemcg_ids)"), strings.Index(s, "mkdir $ctl")
	if after < 0 || control < 0 || control < after {
		t.Errorf("the kmem control (at %d) must follow the leak count (at %d)", control, after)
	}
	if !strings.Contains(s, "echo 1073741824 > $ctl/memory.kmem.limit_in_bytes") {
		t.Error("the control does not activate kmem with a memory.kmem.limit_in_bytes write")
	}
	if err := shParse(t, s); err != nil {
		t.Fatalf("script does not parse: %v", err)
	}
	if err := shParse(t, s+"\nif then\n"); err == nil {
		t.Fatal("the parse check accepts a broken script")
	}
}

// readArchive unpacks a gzip'ed cpio; a regular file's content is put in
// its header's Linkname for the checks.
func readArchive(t *testing.T, path string) map[string]*cpio.Header {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	r := cpio.NewReader(zr)
	out := map[string]*cpio.Header{}
	for {
		h, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		if h.Mode&^cpio.ModePerm == cpio.TypeReg {
			h.Linkname = string(body)
		}
		out[h.Name] = h
	}
	return out
}

// Assemble lays out /init, busybox, runc and the two bundles (seccomp rule,
// memory limit, cgroup under nokmem/, the applets the checks use) in a
// reproducible archive.
func TestAssemble(t *testing.T) {
	bin := t.TempDir()
	cfg := Config{Runc: writeExec(t, bin, "runc", fakeRunc), Busybox: writeExec(t, bin, "busybox", "BUSYBOX"), Work: t.TempDir(), Containers: 7}
	initrd, err := Assemble(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	files := readArchive(t, initrd)
	if h := files["init"]; h == nil || h.Mode.Perm() != 0o755 || h.Linkname != Script(7) {
		t.Fatalf("init: %+v, want the script, mode 0755", h)
	}
	if h := files["bin/runc"]; h == nil || h.Linkname != fakeRunc {
		t.Errorf("bin/runc is not the runc under test")
	}
	for _, b := range []string{"long", "short"} {
		if h := files["bundles/"+b+"/rootfs/bin/mkdir"]; h == nil || h.Mode&^cpio.ModePerm != cpio.TypeSymlink || h.Linkname != "busybox" {
			t.Errorf("bundle %s: rootfs/bin/mkdir %+v, want a link to busybox", b, h)
		}
		if h := files["bundles/"+b+"/rootfs/bin/busybox"]; h == nil || h.Linkname != "BUSYBOX" {
			t.Errorf("bundle %s: no busybox in the rootfs", b)
		}
		h := files["bundles/"+b+"/config.json"]
		if h == nil {
			t.Fatalf("bundle %s: no config.json", b)
		}
		var c struct {
			Process struct{ Terminal bool }
			Linux   struct {
				CgroupsPath string
				Resources   struct{ Memory struct{ Limit int64 } }
				Seccomp     struct {
					DefaultAction string
					Syscalls      []struct {
						Names  []string
						Action string
					}
				}
			}
		}
		if err := json.Unmarshal([]byte(h.Linkname), &c); err != nil {
			t.Fatal(err)
		}
		sc := c.Linux.Seccomp
		if c.Process.Terminal || c.Linux.CgroupsPath != "/nokmem/"+b || c.Linux.Resources.Memory.Limit != 64<<20 ||
			sc.DefaultAction != "SCMP_ACT_ALLOW" || len(sc.Syscalls) != 1 || sc.Syscalls[0].Action != "SCMP_ACT_ERRNO" ||
			strings.Join(sc.Syscalls[0].Names, ",") != "mkdir,mkdirat" {
			t.Errorf("bundle %s config: %+v", b, c)
		}
	}
	for _, d := range []string{"dev", "proc", "newroot", "bundles"} {
		if h := files[d]; h == nil || !h.Mode.IsDir() {
			t.Errorf("%s: not a directory in the archive", d)
		}
	}
	first, err := os.ReadFile(initrd)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Assemble(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(initrd); !bytes.Equal(first, again) {
		t.Error("two assemblies of the same inputs differ")
	}
}

// goodLog is a console log of a passing run.
func goodLog() string {
	var b strings.Builder
	b.WriteString("[    0.000000] Linux version 3.10.0-1127.el7.x86_64\r\n")
	b.WriteString(ResultPrefix + "kernel info 3.10.0-1127.el7.x86_64\r\n")
	for _, name := range Required {
		b.WriteString(ResultPrefix + name + " ok\r\n")
	}
	b.WriteString(DoneLine + "\r\n")
	return b.String()
}

func TestParse(t *testing.T) {
	rep, err := Parse(strings.NewReader(goodLog()))
	if err != nil {
		t.Fatalf("good log: %v", err)
	}
	if r := rep.Get("kernel"); r == nil || r.Detail != "3.10.0-1127.el7.x86_64" || !rep.Done {
		t.Errorf("report %+v", rep)
	}
	tests := []struct{ name, log, want string }{
		{"a failed check", strings.Replace(goodLog(), "leak ok", "leak fail kmemcg ids before=0 after=50", 1), "leak failed: kmemcg ids before=0 after=50"},
		{"slabinfo readable", strings.Replace(goodLog(), "slabinfo-long ok", "slabinfo-long fail read 120 bytes: kmem accounting is active", 1), "slabinfo-long failed"},
		{"a missing check", strings.Replace(goodLog(), ResultPrefix+"seccomp-mkdir-refused ok\r\n", "", 1), "seccomp-mkdir-refused: not reported"},
		{"no end", strings.Replace(goodLog(), DoneLine, "Kernel panic", 1), "did not reach its end"},
		{"empty console", "", "run: not reported"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tc.log))
			if !errors.Is(err, ErrProof) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse = %v, want ErrProof naming %q", err, tc.want)
			}
		})
	}
}

// Run with a stand-in qemu that prints a console log: the command line of
// docs/memcg-v1-semantics.md §3a, the report, a failing guest, and the
// refusals before booting.
func TestRun(t *testing.T) {
	bin := t.TempDir()
	kernel := writeExec(t, bin, "vmlinuz", "KERNEL")
	cfg := Config{Kernel: kernel, Runc: writeExec(t, bin, "runc", fakeRunc), Busybox: writeExec(t, bin, "busybox", "BUSYBOX"), Containers: 50, Work: t.TempDir()}
	logFile := filepath.Join(bin, "console.txt")
	cfg.Qemu = writeExec(t, bin, "qemu", "#!/bin/sh\necho \"$@\" > "+filepath.Join(bin, "args")+"\ncat "+logFile+"\n")
	if err := os.WriteFile(logFile, []byte(goodLog()), 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err := Run(context.Background(), cfg)
	if err != nil || rep.Get("leak") == nil {
		t.Fatalf("Run = %+v, %v", rep, err)
	}
	args, _ := os.ReadFile(filepath.Join(bin, "args"))
	for _, want := range []string{"-accel tcg", "-nographic -no-reboot", "-kernel " + kernel, "-initrd " + filepath.Join(cfg.Work, "initrd.gz"), "console=ttyS0 quiet panic=-1"} {
		if !strings.Contains(string(args), want) {
			t.Errorf("qemu args %q lack %q", args, want)
		}
	}
	if log, err := os.ReadFile(filepath.Join(cfg.Work, "console.log")); err != nil || !strings.Contains(string(log), DoneLine) {
		t.Errorf("console log not kept: %v", err)
	}

	if err := os.WriteFile(logFile, []byte(strings.Replace(goodLog(), "exec ok", "exec fail rc=1", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), cfg); !errors.Is(err, ErrProof) || !strings.Contains(err.Error(), "exec failed") {
		t.Errorf("failing guest: %v", err)
	}
	missing := cfg
	missing.Kernel = filepath.Join(bin, "nope")
	if _, err := Run(context.Background(), missing); err == nil || !strings.Contains(err.Error(), "kernel image") {
		t.Errorf("missing kernel: %v", err)
	}
	noQemu := cfg
	noQemu.Qemu = filepath.Join(bin, "no-qemu")
	if _, err := Run(context.Background(), noQemu); err == nil || !strings.Contains(err.Error(), "qemu-system-x86") {
		t.Errorf("missing qemu: %v", err)
	}
}

// rc5Log is a console where exactly the kmem checks failed, as for the
// unpatched rc5 on 3.10.0-1127 (docs/rhel7-kernel-runs.md).
func rc5Log() string {
	log := goodLog()
	for _, r := range []struct{ from, to string }{
		{"slabinfo-long ok", "slabinfo-long fail read 1122 bytes: kmem accounting is active"},
		{"slabinfo-short ok", "slabinfo-short fail EIO in 0 of 50"},
		{"leak ok", "leak fail kmemcg ids before=1 after=51"},
	} {
		log = strings.Replace(log, r.from, r.to, 1)
	}
	return log
}

// ExpectKmemCaught accepts only a run where every kmem check failed and
// nothing else did.
func TestExpectKmemCaught(t *testing.T) {
	rep, err := Parse(strings.NewReader(rc5Log()))
	if !errors.Is(err, ErrProof) {
		t.Fatalf("Parse of the rc5 log = %v, want ErrProof", err)
	}
	if err := ExpectKmemCaught(rep); err != nil {
		t.Fatalf("rc5 log: %v", err)
	}
	tests := []struct{ name, log, want string }{
		{"kmem never activated", goodLog(), "slabinfo-long: ok"},
		{"one kmem check passed", strings.Replace(rc5Log(), "leak fail kmemcg ids before=1 after=51", "leak ok", 1), "leak: ok"},
		{"another check failed too", strings.Replace(rc5Log(), "run ok", "run fail rc=1", 1), "run: fail (rc=1)"},
		{"a check missing", strings.Replace(rc5Log(), ResultPrefix+"delete ok\r\n", "", 1), "delete: not reported"},
		{"no end", strings.Replace(rc5Log(), DoneLine, "Kernel panic", 1), "did not reach its end"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep, _ := Parse(strings.NewReader(tc.log))
			err := ExpectKmemCaught(rep)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ExpectKmemCaught = %v, want an error naming %q", err, tc.want)
			}
		})
	}
	if err := ExpectKmemCaught(nil); err == nil {
		t.Fatal("ExpectKmemCaught(nil) = nil")
	}
}

// TestBootNice: a boot with Nice runs qemu under nice with §3a's command
// line, and a guest that did not finish names qemu and the console log.
func TestBootNice(t *testing.T) {
	bin := t.TempDir()
	qemu := writeExec(t, bin, "qemu", "#!/bin/sh\necho \"$(nice) $@\" > "+filepath.Join(bin, "args")+"\necho booted\nexit 3\n")
	b := Boot{Qemu: qemu, Kernel: "/k", Initrd: "/i", MemoryMB: 3072, Timeout: time.Minute, Nice: 10, Console: filepath.Join(bin, "console.log")}
	var console string
	_, err := b.Run(context.Background(), func(r io.Reader) error {
		data, err := io.ReadAll(r)
		console = string(data)
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "qemu (console: "+b.Console+")") {
		t.Errorf("qemu exit 3: %v, want qemu and the console named", err)
	}
	if console != "booted\n" {
		t.Errorf("parse got %q", console)
	}
	args, _ := os.ReadFile(filepath.Join(bin, "args"))
	nice, rest, _ := strings.Cut(string(args), " ")
	if n, err := strconv.Atoi(nice); err != nil || n < 10 || !strings.HasPrefix(rest, "-accel tcg -m 3072 ") || !strings.Contains(rest, "-kernel /k -initrd /i") {
		t.Errorf("qemu ran with niceness and args %q, want niceness 10 or more", args)
	}
}
