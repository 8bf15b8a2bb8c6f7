package ansible

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nokmem/nokmem/internal/rpmrepo"
	"github.com/nokmem/nokmem/internal/testenv"
	"github.com/nokmem/nokmem/verify/memcgsim"
)

// yumNode is a node whose root (<dir>/root) holds an rpm database with the
// stand-in el7 kubelet 1.12.4-0 (built with internal/rpmrepo) and whose
// yum configuration sees only the nokmem repository of `go tool mage build`.
func (f *fleet) addYumNode(name, upstream string) *node {
	t := f.t
	n := newNode(t, filepath.Join(f.dir, "nodes"), name, "root/usr/bin", memcgsim.RHEL78)
	root := n.path("root")
	repos := n.path("yum.repos.d")
	yumRepo, err := filepath.Abs(filepath.Join("..", "..", "_output", "yum"))
	if err != nil {
		t.Fatal(err)
	}
	testenv.RequireFile(t, "the yum repository of `go tool mage build`", filepath.Join(yumRepo, rpmrepo.RepoData, "repomd.xml"))
	n.write("yum.repos.d/nokmem.repo", fmt.Sprintf("[nokmem]\nname=nokmem\nbaseurl=file://%s\nenabled=1\ngpgcheck=0\n", yumRepo), 0o644)
	n.write("yum.repos.d/kubernetes.repo", fmt.Sprintf("[kubernetes]\nname=kubernetes\nbaseurl=file://%s\nenabled=1\ngpgcheck=0\nexclude=kubelet\n", upstream), 0o644)
	n.write("dnf.conf", fmt.Sprintf("[main]\ngpgcheck=0\ninstall_weak_deps=False\nreposdir=%s\ncachedir=%s\n", repos, n.path("dnf-cache")), 0o644)
	// The node as the el7 repository left it: stand-ins of kubelet-1.12.4-0
	// and of the packages it requires.
	out, err := exec.Command("dnf", "-y", "--installroot="+root, "--releasever=7", "--config="+n.path("dnf.conf"),
		"--disableplugin=*", "--disablerepo=*", "--enablerepo=kubernetes", "--setopt=kubernetes.excludepkgs=",
		"install", "kubelet-1.12.4-0").CombinedOutput()
	if err != nil {
		t.Fatalf("stand-in kubelet into %s: %v\n%s", root, err, out)
	}
	n.vars = map[string]any{
		"nokmem_install_method":  "packages",
		"nokmem_verify":          filepath.Join(root, rpmrepo.NodeVerify),
		"nokmem_bundle":          filepath.Join(root, rpmrepo.NodeBundleLink),
		"nokmem_pubkey":          filepath.Join(root, rpmrepo.NodePubKey),
		"nokmem_yum_backend":     "dnf",
		"nokmem_yum_installroot": root,
		"nokmem_yum_conf_file":   n.path("dnf.conf"),
		"nokmem_yum_releasever":  "7",
		"nokmem_yum_disablerepo": "*",
		"nokmem_yum_enablerepo":  "nokmem,kubernetes",
		"nokmem_verify_src":      "",
		"nokmem_bundle_src":      "",
		"nokmem_pubkey_src":      "",
		"nokmem_node_report_dir": n.path("reports"),
		"nokmem_drain":           false,
		"nokmem_node_name":       name + ".example.com",
	}
	f.nodes = append(f.nodes, n)
	return n
}

// upstreamStandIn is a yum repository with the stand-in el7 kubelet
// 1.12.4-0 and a package providing what it requires.
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
	for _, p := range []*rpmrepo.Package{stock, base} {
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
	p1, p2 := f.addYumNode("p1", up), f.addYumNode("p2", up)
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
		q, err := exec.Command("rpm", "--root", n.path("root"), "-q", "kubelet", "nokmem-node").CombinedOutput()
		if err != nil || !strings.Contains(string(q), "kubelet-1.12.4-1.nokmem.x86_64") || !strings.Contains(string(q), "nokmem-node-") {
			t.Errorf("%s packages: %v %s", n.name, err, q)
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
