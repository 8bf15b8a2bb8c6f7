package ansible

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nokmem/nokmem/internal/memcgsim"
	"github.com/nokmem/nokmem/internal/rpmrepo"
	"github.com/nokmem/nokmem/internal/testenv"
)

// yumNode is a node whose root (<dir>/root) holds an rpm database with the
// stand-in el7 kubelet 1.12.4-0 (built with internal/rpmrepo) and whose
// yum configuration sees the nokmem repository of `go tool mage build`
// (its published nokmem.repo: gpgcheck=1, repo_gpgcheck=1) and the
// stand-in upstream repository, which also offers kubelet 1.20.15, with
// exclude=kubelet unless exclude is false. The role gets the exact package
// names of the repository's nokmem-packages.yml.
func (f *fleet) addYumNode(name, upstream string, exclude bool) *node {
	t := f.t
	n := newNode(t, filepath.Join(f.dir, "nodes"), name, "root/usr/bin", memcgsim.RHEL78)
	root := n.path("root")
	repos := n.path("yum.repos.d")
	yumRepo, err := filepath.Abs(filepath.Join("..", "..", "_output", "yum"))
	if err != nil {
		t.Fatal(err)
	}
	testenv.RequireFile(t, "the yum repository of `go tool mage build`", filepath.Join(yumRepo, rpmrepo.RepoData, "repomd.xml"))
	repoFile, err := os.ReadFile(filepath.Join(yumRepo, rpmrepo.RepoFileName))
	if err != nil {
		t.Fatal(err)
	}
	baseurl := regexp.MustCompile(`(?m)^baseurl=(\S+)$`).FindSubmatch(repoFile)
	if baseurl == nil {
		t.Fatalf("%s has no baseurl", rpmrepo.RepoFileName)
	}
	n.write("yum.repos.d/nokmem.repo", strings.ReplaceAll(string(repoFile), string(baseurl[1]), "file://"+yumRepo), 0o644)
	excludeLine := "exclude=kubelet\n"
	if !exclude {
		excludeLine = ""
	}
	n.write("yum.repos.d/kubernetes.repo", fmt.Sprintf("[kubernetes]\nname=kubernetes\nbaseurl=file://%s\nenabled=1\ngpgcheck=0\n%s", upstream, excludeLine), 0o644)
	n.write("dnf.conf", fmt.Sprintf("[main]\ngpgcheck=0\ninstall_weak_deps=False\nreposdir=%s\ncachedir=%s\n", repos, n.path("dnf-cache")), 0o644)
	// The node as the el7 repository left it: stand-ins of kubelet-1.12.4-0
	// and of the packages it requires.
	out, err := exec.Command("dnf", "-y", "--installroot="+root, "--releasever=7", "--config="+n.path("dnf.conf"),
		"--disableplugin=*", "--disablerepo=*", "--enablerepo=kubernetes", "--setopt=kubernetes.excludepkgs=",
		"install", "kubelet-1.12.4-0").CombinedOutput()
	if err != nil {
		t.Fatalf("stand-in kubelet into %s: %v\n%s", root, err, out)
	}
	dnfArgs := []string{"--installroot=" + root, "--releasever=7", "--config=" + n.path("dnf.conf"), "--disableplugin=*"}
	n.vars = map[string]any{
		"nokmem_install_method":  "packages",
		"nokmem_rpm_command":     []string{"rpm", "--root", root},
		"nokmem_yum_command":     append([]string{"dnf"}, dnfArgs...),
		"nokmem_yum_repo":        "nokmem",
		"nokmem_verify":          filepath.Join(root, rpmrepo.NodeVerify),
		"nokmem_bundle":          filepath.Join(root, rpmrepo.NodeBundleLink),
		"nokmem_pubkey":          filepath.Join(root, rpmrepo.NodePubKey),
		"nokmem_yum_backend":     "dnf",
		"nokmem_yum_installroot": root,
		"nokmem_yum_conf_file":   n.path("dnf.conf"),
		"nokmem_yum_releasever":  "7",
		"nokmem_verify_src":      "",
		"nokmem_bundle_src":      "",
		"nokmem_pubkey_src":      "",
		"nokmem_node_report_dir": n.path("reports"),
		"nokmem_drain":           false,
		"nokmem_node_name":       name + ".example.com",
	}
	for k, v := range packageNames(t, yumRepo) {
		n.vars[k] = v
	}
	f.nodes = append(f.nodes, n)
	return n
}

// packageNames reads the repository's nokmem-packages.yml.
func packageNames(t *testing.T, repo string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repo, rpmrepo.PackagesFile))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ": "); ok && !strings.HasPrefix(l, "#") {
			m[k] = v
		}
	}
	for _, k := range []string{"nokmem_kubelet_package", "nokmem_node_package", "nokmem_release_key_package"} {
		if m[k] == "" {
			t.Fatalf("%s: no %s in %v", rpmrepo.PackagesFile, k, m)
		}
	}
	return m
}

// upstreamStandIn is a yum repository with the stand-in el7 kubelet
// 1.12.4-0, a newer kubelet 1.20.15-0 and a package providing what they
// require.
func upstreamStandIn(t *testing.T) string {
	dir := t.TempDir()
	when := time.Date(2018, 12, 4, 0, 0, 0, 0, time.UTC)
	stock := rpmrepo.Kubelet{Version: "v1.12.4", Release: "0", Binary: []byte(stockKubelet), BuildTime: when}.Package()
	var provides []string
	for _, r := range rpmrepo.KubeletRequires {
		name, _, _ := strings.Cut(r, " ")
		provides = append(provides, name+" = 1.4.21")
	}
	base := &rpmrepo.Package{Name: "el7-base-standin", Version: "1", Release: "0", Arch: "noarch", Summary: "stand-in", License: "none",
		Provides: provides, BuildTime: when, Files: []rpmrepo.File{{Path: "/usr/share/el7-base-standin", Body: []byte("x"), Mode: 0o644}}}
	newer := rpmrepo.Kubelet{Version: "v1.20.15", Release: "0", Binary: []byte("#!/bin/sh\necho 'Kubernetes v1.20.15'\n"), BuildTime: when}.Package()
	for _, p := range []*rpmrepo.Package{stock, newer, base} {
		if _, err := rpmrepo.WriteFile(dir, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := rpmrepo.CreateRepo(context.Background(), dir, when); err != nil {
		t.Fatal(err)
	}
	return dir
}

// The packages method on two nodes (canary, then one batch): --check
// before nokmem-node is there installs nothing and says so; the yum
// tasks put nokmem-node in place and upgrade the el7 kubelet to the nokmem
// RPM, verify run installs runc from the bundle nokmem-node carries and
// repairs the node, kubectl is called with nokmem_node_name; a second run
// changes nothing.
func TestRolloutWithPackages(t *testing.T) {
	for _, tool := range []string{"dnf", "rpm", "createrepo_c"} {
		testenv.RequireCommand(t, tool)
	}
	f := newFleet(t, built(t))
	up := upstreamStandIn(t)
	p1, p2 := f.addYumNode("p1", up, true), f.addYumNode("p2", up, true)
	f.canary = []string{"p1"}
	// --check before nokmem-node is on the nodes: nothing installed, each
	// node says it could not be checked yet, the run does not fail.
	out, code, _ := f.play("site.yml", "--check")
	if code != 0 || !strings.Contains(out, "p1: not checked") || !strings.Contains(out, "p2: not checked") {
		t.Fatalf("--check: exit %d\n%s", code, out)
	}
	for _, n := range []*node{p1, p2} {
		if q, err := exec.Command("rpm", "--root", n.path("root"), "-q", "nokmem-node").CombinedOutput(); err == nil {
			t.Errorf("--check installed on %s: %s", n.name, q)
		}
	}
	out, code, _ = f.play("site.yml")
	if code != 0 {
		t.Fatalf("rollout: exit %d\n%s", code, out)
	}
	log := f.kubectlLog()
	for _, n := range []*node{p1, p2} {
		n.checkRepaired(t)
		f.checkReports(n.name)
		// Exactly the packages the repository names, with upstream's
		// kubelet 1.20.15 on offer (and excluded).
		q, err := exec.Command("rpm", "--root", n.path("root"), "-q", "kubelet", "nokmem-node", "nokmem-release-key").CombinedOutput()
		want := []string{n.vars["nokmem_kubelet_package"].(string), n.vars["nokmem_node_package"].(string), n.vars["nokmem_release_key_package"].(string)}
		if err != nil || strings.Fields(string(q))[0] != want[0] || !slices.Equal(strings.Fields(string(q)), want) {
			t.Errorf("%s packages: %v %q, want %q", n.name, err, q, want)
		}
		if !strings.HasPrefix(want[0], "kubelet-1.12.4-1.nokmem.") {
			t.Errorf("nokmem_kubelet_package %s", want[0])
		}
		if sig, err := exec.Command("rpm", "--root", n.path("root"), "-q", "--qf", "%{SIGPGP:pgpsig}", "kubelet").CombinedOutput(); err != nil || !strings.HasPrefix(string(sig), "RSA/SHA256") {
			t.Errorf("%s: installed kubelet signature %q %v", n.name, sig, err)
		}
		if b, _ := os.ReadFile(n.path("root/usr/bin/runc")); string(b) == stockRunc {
			t.Errorf("%s: runc not replaced from the bundle", n.name)
		}
		if index(log, "cordon "+n.name+".example.com") < 0 || index(log, "uncordon "+n.name+".example.com") < 0 {
			t.Errorf("kubectl calls for %s: %q", n.name, log)
		}
	}
	if index(log, "uncordon p1.example.com") > index(log, "cordon p2.example.com") {
		t.Errorf("p2 before the canary finished: %q", log)
	}
	out, code, rc := f.play("site.yml")
	if code != 0 {
		t.Fatalf("second rollout: exit %d\n%s", code, out)
	}
	for _, n := range []*node{p1, p2} {
		if r := rc[n.name]; r.changed != 0 {
			t.Errorf("second run %s: %+v, want changed=0", n.name, r)
		}
	}
}

// The gate of the packages method refuses, before touching the node, a
// node whose upstream repository offers kubelet (no exclude=kubelet) and a
// package name that would change the kubelet's minor version.
func TestPackagesGateRefuses(t *testing.T) {
	for _, tool := range []string{"dnf", "rpm", "createrepo_c"} {
		testenv.RequireCommand(t, tool)
	}
	f := newFleet(t, built(t))
	up := upstreamStandIn(t)
	p1 := f.addYumNode("p1", up, false)
	f.canary = []string{"p1"}
	before := rpmState(t, p1)
	out, code, _ := f.play("site.yml")
	if code == 0 || !strings.Contains(out, "a repository other than nokmem offers kubelet (kubelet.x86_64") || !strings.Contains(out, "1.20.15-0") ||
		!strings.Contains(out, "add exclude=kubelet") {
		t.Errorf("no exclude: exit %d\n%s", code, out)
	}
	if got := rpmState(t, p1); got != before {
		t.Errorf("no exclude: the node was touched:\n%s\nwas\n%s", got, before)
	}
	if log := f.kubectlLog(); len(log) != 1 || log[0] != "" {
		t.Errorf("no exclude: kubectl calls %q", log)
	}
	p1.write("yum.repos.d/kubernetes.repo", fmt.Sprintf("[kubernetes]\nname=kubernetes\nbaseurl=file://%s\nenabled=1\ngpgcheck=0\nexclude=kubelet\n", up), 0o644)
	p1.vars["nokmem_kubelet_package"] = "kubelet-1.20.15-0.x86_64"
	out, code, _ = f.play("site.yml")
	if code == 0 || !strings.Contains(out, "would change the kubelet from 1.12.4 to 1.20.15") {
		t.Errorf("minor version change: exit %d\n%s", code, out)
	}
	if got := rpmState(t, p1); got != before {
		t.Errorf("minor version change: the node was touched:\n%s\nwas\n%s", got, before)
	}
	if s := f.status("p1"); s["state"] != "refused" {
		t.Errorf("p1 status %v", s)
	}
}

// rpmState is what the packages method could change on a yum node: the
// installed packages, the binaries, the cgroups (the dnf cache and log,
// which `dnf list` writes, are left out).
func rpmState(t *testing.T, n *node) string {
	t.Helper()
	q, err := exec.Command("rpm", "--root", n.path("root"), "-qa").CombinedOutput()
	if err != nil {
		t.Fatalf("rpm -qa: %v %s", err, q)
	}
	pkgs := strings.Fields(string(q))
	slices.Sort(pkgs)
	var b strings.Builder
	fmt.Fprintf(&b, "packages %v\n", pkgs)
	for _, f := range []string{"root/usr/bin/kubelet", "root/usr/bin/runc", "systemctl.log"} {
		data, _ := os.ReadFile(n.path(f))
		fmt.Fprintf(&b, "%s sha256 %x\n", f, sha256.Sum256(data))
	}
	all, err := n.h.Walk("")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "cgroups %v\n", all)
	return b.String()
}
