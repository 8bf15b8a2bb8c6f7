package rpmrepo

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/nokmem/nokmem/internal/layout"
	"github.com/nokmem/nokmem/internal/release/sums"
	"github.com/nokmem/nokmem/internal/testenv"
)

// These tests check the RPMs and the repository that `go tool mage build`
// published under _output/yum with Debian's real rpm, dnf and createrepo_c
// (under NOKMEM_STRICT they fail when the tools or the build are missing).

var output = layout.New(filepath.Join("..", "..")).OutputRoot()

type built struct {
	repo, pub, kubelet, node, key string
	kubeletSHA                    string // of the bundle's kubelet
}

func builtRepo(t *testing.T) built {
	t.Helper()
	for _, tool := range []string{"rpm", "dnf", "createrepo_c"} {
		testenv.RequireCommand(t, tool)
	}
	repo, err := filepath.Abs(filepath.Join(output, "yum"))
	if err != nil {
		t.Fatal(err)
	}
	testenv.RequireFile(t, "the yum repository of `go tool mage build`", filepath.Join(repo, RepoData, "repomd.xml"))
	b := built{repo: repo, pub: filepath.Join(output, "nokmem-release.pub")}
	one := func(pattern string) string {
		m, _ := filepath.Glob(filepath.Join(repo, pattern))
		if len(m) != 1 {
			t.Fatalf("%s in %s: %v, want exactly one", pattern, repo, m)
		}
		return m[0]
	}
	b.kubelet = one("kubelet-1.12.4-1.nokmem.*.x86_64.rpm")
	b.node = one("nokmem-node-*.x86_64.rpm")
	b.key = one("nokmem-release-key-*.noarch.rpm")
	bundles, _ := filepath.Glob(filepath.Join(output, "bundle", "nokmem-*", sums.SHA256.SumsFile))
	if len(bundles) != 1 {
		t.Fatalf("bundle folders %v, want one", bundles)
	}
	s, err := sums.Parse(bundles[0])
	if err != nil {
		t.Fatal(err)
	}
	b.kubeletSHA = s["kubelet"]
	return b
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return string(out)
}

// The published RPMs: metadata, files with owners, modes and flags, no
// scriptlets, digests, the signed checksums, and nothing of the build
// machine in the payload.
func TestPublishedRPMs(t *testing.T) {
	b := builtRepo(t)
	if err := Check(b.repo, b.pub); err != nil {
		t.Fatalf("the published repository: %v", err)
	}
	// The reference tool agrees with the signature over SHA256SUMS.
	minisign := testenv.RequireCommand(t, "minisign")
	run(t, minisign, "-Vm", filepath.Join(b.repo, "SHA256SUMS"), "-p", b.pub)
	info := run(t, "rpm", "-qpi", b.kubelet)
	for _, want := range []string{"Name        : kubelet", "Version     : 1.12.4", "Release     : 1.nokmem", "Architecture: x86_64", "License     : ASL 2.0", "Build Host  : nokmem"} {
		if !strings.Contains(info, want) {
			t.Errorf("rpm -qpi kubelet lacks %q:\n%s", want, info)
		}
	}
	// rpm's own version comparison: ours is newer than the el7 repository's
	// release 0 (and 00) of the same version.
	rel := strings.TrimSpace(run(t, "rpm", "-qp", "--qf", "%{RELEASE}", b.kubelet))
	for _, upstream := range []string{"0", "00"} {
		if got := strings.TrimSpace(run(t, "rpm", "--eval", fmt.Sprintf(`%%{lua:print(rpm.vercmp("1.12.4-%s", "1.12.4-%s"))}`, rel, upstream))); got != "1" {
			t.Errorf("rpm.vercmp(%s, %s) = %s, want 1", rel, upstream, got)
		}
	}
	files := map[string]string{
		b.kubelet: "/etc/kubernetes/manifests drwxr-xr-x root root -\n" +
			"/etc/sysconfig/kubelet -rw-r--r-- root root cn\n" +
			"/usr/bin/kubelet -rwxr-xr-x root root -\n" +
			"/usr/lib/systemd/system/kubelet.service -rw-r--r-- root root -\n",
		b.node: "/etc/nokmem drwxr-xr-x root root -\n" +
			"/etc/nokmem/release.pub -rw-r--r-- root root cn\n" +
			"/opt/nokmem drwxr-xr-x root root -\n" +
			"/opt/nokmem/bin drwxr-xr-x root root -\n" +
			"/opt/nokmem/bin/verify -rwxr-xr-x root root -\n" +
			"/opt/nokmem/bundle drwxr-xr-x root root -\n" +
			"/opt/nokmem/bundle/current.tar.gz lrwxrwxrwx root root -\n",
		b.key: "/etc/pki/rpm-gpg/RPM-GPG-KEY-nokmem -rw-r--r-- root root cn\n",
	}
	keyRoot := t.TempDir()
	run(t, "rpm", "--root", keyRoot, "--import", filepath.Join(b.repo, GPGKeyFile))
	for rpm, want := range files {
		got := run(t, "rpm", "-qp", "--qf", `[%{FILENAMES} %{FILEMODES:perms} %{FILEUSERNAME} %{FILEGROUPNAME} %{FILEFLAGS:fflags}\n]`, rpm)
		got = strings.ReplaceAll(got, " \n", " -\n")
		// The node package also holds the bundle tarball, named after the bundle.
		var lines []string
		for _, l := range strings.SplitAfter(got, "\n") {
			if strings.HasPrefix(l, "/opt/nokmem/bundle/nokmem-") && strings.HasSuffix(l, ".tar.gz -rw-r--r-- root root -\n") {
				continue
			}
			lines = append(lines, l)
		}
		if got := strings.Join(lines, ""); got != want {
			t.Errorf("rpm -qp %s files:\n%s\nwant\n%s", filepath.Base(rpm), got, want)
		}
		if s := run(t, "rpm", "-qp", "--scripts", "--triggers", rpm); strings.TrimSpace(s) != "" {
			t.Errorf("%s has scriptlets:\n%s", filepath.Base(rpm), s)
		}
		if out := run(t, "rpm", "--root", keyRoot, "-K", rpm); !strings.Contains(out, "digests signatures OK") {
			t.Errorf("rpm -K %s: %s", rpm, out)
		}
		if out := run(t, "rpm", "--root", keyRoot, "-Kv", rpm); !regexp.MustCompile(`(?m)^\s+Header V4 RSA/SHA256 Signature, key ID [0-9a-f]{8}: OK$`).MatchString(out) ||
			!regexp.MustCompile(`(?m)^\s+V4 RSA/SHA256 Signature, key ID [0-9a-f]{8}: OK$`).MatchString(out) {
			t.Errorf("rpm -Kv %s shows no V4 RSA signature:\n%s", rpm, out)
		}
		// Build time = every file's mtime (the source date), for reproducibility.
		times := run(t, "rpm", "-qp", "--qf", `%{BUILDTIME}[ %{FILEMTIMES}]`, rpm)
		f := strings.Fields(times)
		for _, m := range f[1:] {
			if m != f[0] {
				t.Errorf("%s: file mtime %s differs from the build time %s", filepath.Base(rpm), m, f[0])
			}
		}
	}
	if out := run(t, "rpm", "-qpl", b.node); !strings.Contains(out, "/opt/nokmem/bundle/nokmem-v1.12.4-") {
		t.Errorf("rpm -qpl nokmem-node has no bundle:\n%s", out)
	}
	if out := run(t, "rpm", "-qp", "--requires", b.node); strings.Contains(out, "kubelet") {
		t.Errorf("nokmem-node requires %s", out)
	}
}

// dnfRoot is an empty --installroot with its own repositories (file://
// only), cache and configuration; nothing reaches the network.
type dnfRoot struct {
	t                      *testing.T
	root, repos, conf, tmp string
}

func newDNFRoot(t *testing.T, repos map[string]string) *dnfRoot {
	d := &dnfRoot{t: t, tmp: t.TempDir()}
	d.root, d.repos, d.conf = filepath.Join(d.tmp, "root"), filepath.Join(d.tmp, "repos.d"), filepath.Join(d.tmp, "dnf.conf")
	for _, dir := range []string{d.root, d.repos} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(d.conf, []byte("[main]\ngpgcheck=0\ninstall_weak_deps=False\nkeepcache=False\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, body := range repos {
		if err := os.WriteFile(filepath.Join(d.repos, name+".repo"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func repoFile(id, dir, extra string) string {
	return fmt.Sprintf("[%s]\nname=%s\nbaseurl=file://%s\nenabled=1\ngpgcheck=0\n%s", id, id, dir, extra)
}

func (d *dnfRoot) dnf(enable string, args ...string) (string, error) {
	base := []string{"-y", "--installroot=" + d.root, "--releasever=7", "--config=" + d.conf,
		"--setopt=reposdir=" + d.repos, "--setopt=cachedir=" + filepath.Join(d.tmp, "cache"),
		"--disableplugin=*", "--disablerepo=*", "--enablerepo=" + enable}
	out, err := exec.Command("dnf", append(base, args...)...).CombinedOutput()
	return string(out), err
}

func (d *dnfRoot) mustDNF(enable string, args ...string) string {
	d.t.Helper()
	out, err := d.dnf(enable, args...)
	if err != nil {
		d.t.Fatalf("dnf %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (d *dnfRoot) installed(name string) string {
	d.t.Helper()
	out, _ := exec.Command("rpm", "--root", d.root, "-q", "--qf", "%{VERSION}-%{RELEASE}", name).CombinedOutput()
	return strings.TrimSpace(string(out))
}

func (d *dnfRoot) sha(path string) string {
	d.t.Helper()
	s, err := sums.File(sums.SHA256, filepath.Join(d.root, path))
	if err != nil {
		d.t.Fatal(err)
	}
	return s
}

// upstreamRepo builds, with this package, stand-ins for the Kubernetes el7
// repository (kubelet and kubeadm 1.12.4-0, same layout) and for the base
// packages kubelet requires, and makes a repository of them.
func upstreamRepo(t *testing.T, extra ...*Package) string {
	dir := t.TempDir()
	stock := Kubelet{Version: "v1.12.4", Release: "0", Binary: []byte(stockKubelet), BuildTime: when}.Package()
	for i, f := range stock.Files {
		if f.Path == KubeletSysconfig {
			stock.Files[i].Body = []byte(upstreamSysconfig)
		}
	}
	kubeadm := &Package{Name: "kubeadm", Version: "1.12.4", Release: "0", Arch: "x86_64", Summary: "stand-in", License: "ASL 2.0",
		Requires: []string{"kubelet >= 1.6.0"}, BuildTime: when, Files: []File{
			{Path: "/usr/bin/kubeadm", Body: []byte("#!/bin/sh\n"), Mode: 0o755},
			{Path: "/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf", Body: []byte("[Service]\n"), Mode: 0o644},
		}}
	var provides []string
	for _, r := range KubeletRequires {
		name, _, _ := strings.Cut(r, " ")
		provides = append(provides, name+" = 1.4.21")
	}
	provides = append(provides[:1], append([]string{"kubernetes-cni = 0.6.0"}, provides[2:]...)...)
	base := &Package{Name: "el7-base-standin", Version: "1", Release: "0", Arch: "noarch", Summary: "stand-in", License: "none",
		Provides: provides, BuildTime: when, Files: []File{{Path: "/usr/share/el7-base-standin", Body: []byte("x"), Mode: 0o644}}}
	for _, p := range append([]*Package{stock, kubeadm, base}, extra...) {
		if _, err := WriteFile(dir, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := CreateRepo(context.Background(), dir, when); err != nil {
		t.Fatal(err)
	}
	return dir
}

const stockKubelet = "#!/bin/sh\necho 'Kubernetes v1.12.4'\n"

// upstreamSysconfig is the stand-in's /etc/sysconfig/kubelet: not ours, so
// that rpm's %config(noreplace) handling of an edited file shows.
const upstreamSysconfig = "# el7 stand-in\nKUBELET_EXTRA_ARGS=\n"

// From the el7 repository's kubelet to ours and back: dnf upgrade from
// _output/yum replaces the stand-in (an edited /etc/sysconfig/kubelet and
// kubeadm's drop-in stay, no file conflicts, rpm -V clean), dnf downgrade
// gives the stand-in back, nokmem-node installs and rpm -e removes it
// without a trace, and exclude= keeps ours when the upstream repository
// has a newer release of the same version.
func TestDNFUpgradeFromUpstream(t *testing.T) {
	b := builtRepo(t)
	newer := Kubelet{Version: "v1.12.4", Release: "5", Binary: []byte("#!/bin/sh\necho newer upstream\n"), BuildTime: when}.Package()
	up := upstreamRepo(t)
	upNewer := upstreamRepo(t, newer)
	// The published nokmem.repo (gpgcheck=1, repo_gpgcheck=1), at this folder.
	d := newDNFRoot(t, map[string]string{
		"upstream": repoFile("kubernetes", up, ""),
		"nokmem":   publishedRepoFile(t, b.repo),
	})
	d.mustDNF("kubernetes", "install", "kubelet", "kubeadm")
	if got := d.installed("kubelet"); got != "1.12.4-0" {
		t.Fatalf("stand-in kubelet %q, want 1.12.4-0", got)
	}
	edited := "KUBELET_EXTRA_ARGS=--node-labels=pool=a\n"
	if err := os.WriteFile(filepath.Join(d.root, KubeletSysconfig), []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	d.mustDNF("kubernetes,nokmem", "upgrade")
	if got := d.installed("kubelet"); !strings.HasPrefix(got, "1.12.4-1.nokmem.") {
		t.Fatalf("after dnf upgrade kubelet is %q, want the nokmem build", got)
	}
	if got := d.sha(KubeletBinaryPath); got != b.kubeletSHA {
		t.Errorf("/usr/bin/kubelet sha256 %s, want the bundle's kubelet %s", got, b.kubeletSHA)
	}
	if got, _ := os.ReadFile(filepath.Join(d.root, KubeletSysconfig)); string(got) != edited {
		t.Errorf("edited %s after upgrade: %q", KubeletSysconfig, got)
	}
	if got, _ := os.ReadFile(filepath.Join(d.root, KubeletSysconfig+".rpmnew")); string(got) != KubeletSysconfigBody {
		t.Errorf("%s.rpmnew after upgrade: %q (the stand-in's body differs from ours: noreplace writes ours beside the edit)", KubeletSysconfig, got)
	}
	if got := d.installed("kubeadm"); got != "1.12.4-0" {
		t.Errorf("kubeadm %q after the upgrade", got)
	}
	// rpm -V: only the edited config file differs; modes, owners, digests of the rest match.
	for _, pkg := range []string{"kubelet", "kubeadm"} {
		out, _ := exec.Command("rpm", "--root", d.root, "-V", pkg).CombinedOutput()
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if l != "" && !strings.HasSuffix(l, " c /etc/sysconfig/kubelet") {
				t.Errorf("rpm -V %s: %s", pkg, l)
			}
		}
	}
	d.mustDNF("nokmem", "install", "nokmem-node")
	if out, err := exec.Command("rpm", "--root", d.root, "-V", "nokmem-node").CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("rpm -V nokmem-node: %v\n%s", err, out)
	}
	if out, err := exec.Command(filepath.Join(d.root, NodeVerify), "version").CombinedOutput(); err != nil || !strings.Contains(string(out), "bundle nokmem-v1.12.4-") {
		t.Errorf("installed verify version: %v %s", err, out)
	}
	if _, err := os.Stat(filepath.Join(d.root, NodeBundleLink)); err != nil {
		t.Errorf("bundle link: %v", err)
	}
	noBuildPaths(t, d.root, KubeletBinaryPath, NodeVerify, NodeBundleLink, NodePubKey, KubeletUnitPath, KubeletSysconfig)
	// The yum path of the README: with both packages in place, the
	// installed verify installs the bundle from /opt/nokmem (runc from it;
	// the kubelet is already the same bytes), and rpm -V of the kubelet
	// package stays clean but for the file time; install --rollback puts
	// the stock runc back.
	stockRunc := "#!/bin/sh\necho 'runc version 1.0.0-rc5'\n"
	if err := os.WriteFile(filepath.Join(d.root, "usr/bin/runc"), []byte(stockRunc), 0o755); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(d.tmp, "state")
	verify := func(args ...string) {
		t.Helper()
		args = append(args, "--state-dir", state)
		cmd := exec.Command(filepath.Join(d.root, NodeVerify), args...)
		cmd.Env = append(os.Environ(), "NOKMEM_LOCK_DIR="+filepath.Join(d.tmp, "lock"))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("installed verify %v: %v\n%s", args, err, out)
		}
	}
	verify("install", "--bundle", filepath.Join(d.root, NodeBundleLink), "--pubkey", filepath.Join(d.root, NodePubKey),
		"--search-dirs", filepath.Join(d.root, "usr/bin"), "--tmp-dir", d.tmp)
	if got := d.sha("usr/bin/runc"); got == "" || got == d.sha(KubeletBinaryPath) {
		t.Fatalf("runc sha256 %s after install", got)
	}
	if got := d.sha(KubeletBinaryPath); got != b.kubeletSHA {
		t.Errorf("kubelet after verify install: %s, want %s", got, b.kubeletSHA)
	}
	out, _ := exec.Command("rpm", "--root", d.root, "-V", "kubelet").CombinedOutput()
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" && !strings.HasSuffix(l, " c /etc/sysconfig/kubelet") && l != ".......T.    "+KubeletBinaryPath {
			t.Errorf("rpm -V kubelet after verify install: %s", l)
		}
	}
	verify("install", "--rollback")
	if got, _ := os.ReadFile(filepath.Join(d.root, "usr/bin/runc")); string(got) != stockRunc {
		t.Errorf("runc after install --rollback: %.40q", got)
	}
	// Back to the el7 build.
	d.mustDNF("kubernetes,nokmem", "downgrade", "kubelet")
	if got := d.installed("kubelet"); got != "1.12.4-0" {
		t.Errorf("after dnf downgrade kubelet is %q, want 1.12.4-0", got)
	}
	if got, _ := os.ReadFile(filepath.Join(d.root, KubeletBinaryPath)); string(got) != stockKubelet {
		t.Errorf("/usr/bin/kubelet after downgrade: %.40q", got)
	}
	if got, _ := os.ReadFile(filepath.Join(d.root, KubeletSysconfig)); string(got) != edited {
		t.Errorf("edited %s after downgrade: %q", KubeletSysconfig, got)
	}
	// rpm -e nokmem-node leaves nothing of it behind.
	run(t, "rpm", "--root", d.root, "-e", "nokmem-node")
	for _, p := range []string{NodeDir, NodeConfigDir} {
		if _, err := os.Lstat(filepath.Join(d.root, p)); !os.IsNotExist(err) {
			t.Errorf("%s after rpm -e nokmem-node: %v", p, err)
		}
	}
	// The README's exclude= recipe: the upstream repository gets a newer
	// release of the same version; with exclude=kubelet on it, ours stays.
	d.mustDNF("kubernetes,nokmem", "upgrade")
	repo := filepath.Join(d.repos, "upstream.repo")
	if err := os.WriteFile(repo, []byte(repoFile("kubernetes", upNewer, "exclude=kubelet\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	d.mustDNF("kubernetes,nokmem", "upgrade")
	if got := d.installed("kubelet"); !strings.HasPrefix(got, "1.12.4-1.nokmem.") {
		t.Errorf("with exclude=kubelet, dnf upgrade made kubelet %q", got)
	}
	if err := os.WriteFile(repo, []byte(repoFile("kubernetes", upNewer, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	d.mustDNF("kubernetes,nokmem", "upgrade")
	if got := d.installed("kubelet"); got != "1.12.4-5" {
		t.Errorf("without exclude, kubelet %q: want the newer upstream 1.12.4-5 (the exclude check above is then meaningful)", got)
	}
}

// createrepo_c with the same inputs and date writes the same metadata.
func TestRepoMetadataReproducible(t *testing.T) {
	b := builtRepo(t)
	a, c := t.TempDir(), t.TempDir()
	for _, dir := range []string{a, c} {
		for _, r := range []string{b.kubelet, b.node} {
			if err := os.Symlink(r, filepath.Join(dir, filepath.Base(r))); err != nil {
				t.Fatal(err)
			}
		}
		if err := CreateRepo(context.Background(), dir, when); err != nil {
			t.Fatal(err)
		}
	}
	x, _ := os.ReadFile(filepath.Join(a, RepoData, "repomd.xml"))
	y, _ := os.ReadFile(filepath.Join(c, RepoData, "repomd.xml"))
	if !bytes.Equal(x, y) {
		t.Errorf("repomd.xml differs between two runs:\n%s\n%s", x, y)
	}
	pub, _ := os.ReadFile(filepath.Join(b.repo, RepoData, "repomd.xml"))
	if !bytes.Contains(pub, []byte("<revision>")) {
		t.Errorf("published repomd.xml has no revision:\n%s", pub)
	}
}

// noBuildPaths checks that no installed file of ours holds a path of the
// build machine (the checkout, the build and output folders, the module
// and build caches, the staging folder of the repository).
func noBuildPaths(t *testing.T, root string, paths ...string) {
	t.Helper()
	abs, _ := filepath.Abs(filepath.Join("..", ".."))
	needles := []string{abs, "/_build/", "/_output/", ".yum-staging-"}
	for _, env := range []string{"GOMODCACHE", "GOCACHE"} {
		if v := os.Getenv(env); len(v) > 4 {
			needles = append(needles, v)
		}
	}
	for _, p := range paths {
		data, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range needles {
			if bytes.Contains(data, []byte(n)) {
				t.Errorf("installed %s holds the build path %q", p, n)
			}
		}
	}
}

// publishedRepoFile is the nokmem.repo of a published repository with its
// baseurl (and gpgkey) moved to dir.
func publishedRepoFile(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, RepoFileName))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^baseurl=(\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("%s has no baseurl:\n%s", RepoFileName, b)
	}
	return strings.ReplaceAll(string(b), string(m[1]), "file://"+dir)
}
