package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nokmem/nokmem/internal/bundle"
	"github.com/nokmem/nokmem/internal/rpmrepo"
	"github.com/nokmem/nokmem/internal/testenv"
	"github.com/nokmem/nokmem/verify/acceptance"
)

// shippedCommands reads what the systemd unit's ExecStart and the NPD
// plugin config run: the program and its arguments.
func shippedCommands(t *testing.T) (unit, npd []string) {
	t.Helper()
	b, err := os.ReadFile("../scripts/nokmem-acceptance.service")
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "ExecStart="); ok {
			unit = strings.Fields(v)
		}
	}
	b, err = os.ReadFile("../scripts/npd-nokmem-plugin.json")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Rules []struct {
			Path string
			Args []string
		}
	}
	if err := json.Unmarshal(b, &cfg); err != nil || len(cfg.Rules) != 1 || len(unit) == 0 {
		t.Fatalf("unit ExecStart %v, npd config %+v, %v", unit, cfg, err)
	}
	return unit, append([]string{cfg.Rules[0].Path}, cfg.Rules[0].Args...)
}

// TestShippedFilesAgainstRPM is the "shipped files disagree": the
// unit ran /usr/local/bin/verify --bundle /opt/nokmem/bundle, while the
// nokmem-node RPM puts verify in /opt/nokmem/bin and a tarball in that
// folder; the NPD config passed --known-sums /etc/nokmem/SHA256SUMS, which
// nothing installs. Here the nokmem-node RPM is built by internal/rpmrepo
// (with this tree's verify and a signed test bundle) and installed with
// rpm into an installroot; every /opt/nokmem and /etc/nokmem path the unit
// and the NPD config name must be a file of the package, and what they run
// must work against those files on a simulated affected node: the NPD
// command prints its one line with a verdict (not "unknown"), the unit's
// command repairs the node and writes its reports to /var/lib/nokmem (the
// unit's StateDirectory).
func TestShippedFilesAgainstRPM(t *testing.T) {
	testenv.RequireRoot(t)
	rpm := testenv.RequireCommand(t, "rpm")
	n := newMigratableNode(t, 4, 1)

	// The nokmem-node RPM, as internal/rpmrepo builds it.
	mtime := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	tgz := filepath.Join(t.TempDir(), filepath.Base(n.bundle.Dir)+bundle.TarExt)
	if err := bundle.Pack(n.bundle.Dir, tgz, mtime); err != nil {
		t.Fatal(err)
	}
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	pkg, err := rpmrepo.Node{VerifyVersion: "v0.0.0-20261207000000-000000000000", Verify: read(verifyBin),
		BundleFile: filepath.Base(tgz), Bundle: read(tgz), PubKey: read(n.bundle.Pub), BuildTime: mtime}.Package()
	if err != nil {
		t.Fatal(err)
	}
	rpmFile, err := rpmrepo.WriteFile(t.TempDir(), pkg)
	if err != nil {
		t.Fatal(err)
	}
	installroot := t.TempDir()
	if out, err := exec.Command(rpm, "--root", installroot, "-i", "--nodeps", "--nosignature", rpmFile).CombinedOutput(); err != nil {
		t.Fatalf("rpm --root %s -i %s: %v\n%s", installroot, rpmFile, err, out)
	}

	// The node's paths inside the installroot; the unit's StateDirectory
	// in a scratch folder.
	stateDir := filepath.Join(t.TempDir(), "var-lib-nokmem")
	if err := os.Mkdir(stateDir, 0o755); err != nil {
		t.Fatal(err)
	}
	mapPaths := func(t *testing.T, cmd []string) []string {
		t.Helper()
		var out []string
		for _, a := range cmd {
			switch {
			case strings.HasPrefix(a, "/opt/nokmem/"), strings.HasPrefix(a, "/etc/nokmem/"):
				if _, err := os.Stat(filepath.Join(installroot, a)); err != nil {
					t.Errorf("%s names %s, which the nokmem-node RPM does not install: %v", cmd[0], a, err)
				}
				a = filepath.Join(installroot, a)
			case strings.HasPrefix(a, "/var/lib/nokmem/"):
				a = filepath.Join(stateDir, strings.TrimPrefix(a, "/var/lib/nokmem/"))
			case strings.HasPrefix(a, "/"):
				t.Errorf("%s names %s, a path outside the nokmem-node RPM and the unit's StateDirectory", cmd[0], a)
			}
			out = append(out, a)
		}
		return out
	}
	// Pointers at the simulated node, appended to what the files run.
	nodeArgs := append([]string{"--root", n.Mount.Memory, "--state-dir", n.path("state")}, n.detectArgs()...)
	unit, npd := shippedCommands(t)
	if unit[0] != rpmrepo.NodeVerify || npd[0] != rpmrepo.NodeVerify {
		t.Errorf("the unit runs %s and the NPD config %s; the RPM installs verify at %s", unit[0], npd[0], rpmrepo.NodeVerify)
	}

	t.Run("npd", func(t *testing.T) {
		cmd := mapPaths(t, npd)
		stdout, stderr, code := runBin(t, exec.Command(cmd[0], append(cmd[1:], nodeArgs...)...))
		if code != 1 || strings.Count(stdout, "\n") != 1 || strings.HasPrefix(stdout, "unknown") || !strings.Contains(stdout, "kmem-active") {
			t.Errorf("NPD command %v: exit %d, want 1 and one line on this affected node\nstdout %q\nstderr %s", cmd, code, stdout, stderr)
		}
	})

	t.Run("unit", func(t *testing.T) {
		cmd := mapPaths(t, unit)
		proc, kubelet := n.path("proc"), n.path("bin/kubelet")
		n.write("proc/4242/comm", "kubelet\n", 0o644)
		if err := os.Symlink(kubelet, n.path("proc/4242/exe")); err != nil {
			t.Fatal(err)
		}
		args := append(cmd[1:], nodeArgs...)
		args = append(args, "--proc", proc, "--tmp-dir", t.TempDir(), "--kubelet-timeout", "20s",
			"--stop-cmd", fmt.Sprintf("rm -rf %s/4242", proc),
			"--start-cmd", fmt.Sprintf("mkdir -p %[1]s/4242 && echo kubelet > %[1]s/4242/comm && ln -s %[2]s %[1]s/4242/exe", proc, kubelet))
		stdout, stderr, code := runBin(t, exec.Command(cmd[0], args...))
		if code != 0 {
			t.Fatalf("unit ExecStart %v: exit %d\nstdout %s\nstderr %s", cmd, code, stdout, stderr)
		}
		var res acceptance.Result
		if err := json.Unmarshal(read(filepath.Join(stateDir, "report.json")), &res); err != nil || res.Outcome != acceptance.OutcomePassed || res.Install == nil {
			t.Errorf("report.json in the StateDirectory: %v, outcome %q, install %v", err, res.Outcome, res.Install)
		}
		if _, err := os.Stat(filepath.Join(stateDir, "junit.xml")); err != nil {
			t.Errorf("junit.xml: %v", err)
		}
	})
}
