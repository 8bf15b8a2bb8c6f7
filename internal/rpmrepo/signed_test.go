package rpmrepo

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/nokmem/nokmem/internal/testenv"
)

// These tests build the RPMs and the repository with this package (the
// code under test) and check them with Debian's real rpm and dnf. Debian's
// rpm 4.18 checks OpenPGP signatures with rpm's own parser
// (rpmio/rpmpgp.c, not Sequoia), the parser CentOS 7's rpm 4.11 has too,
// and reads the same signature tags (RSAHEADER over the header, PGP over
// header and payload).

// signedRepo publishes a stand-in nokmem kubelet, nokmem-node and
// nokmem-release-key, signed with the development OpenPGP key.
func signedRepo(t *testing.T) (published, []*Package) {
	t.Helper()
	for _, tool := range []string{"rpm", "dnf", "createrepo_c"} {
		testenv.RequireCommand(t, tool)
	}
	pub, err := devGPG(t).Public()
	if err != nil {
		t.Fatal(err)
	}
	kube := testKubelet(KubeletRelease(when, []byte(nokmemKubelet)), nokmemKubelet)
	node, err := Node{VerifyVersion: "v1.2.3", Verify: []byte("#!/bin/sh\n"), BundleFile: "nokmem-x.tar.gz", Bundle: []byte("b"), PubKey: []byte("minisign key\n"), BuildTime: when}.Package()
	if err != nil {
		t.Fatal(err)
	}
	key := ReleaseKey{Version: node.Version, Release: node.Release, GPGPublic: pub, BuildTime: when}.Package()
	pkgs := []*Package{kube, node, key}
	return publishTest(t, pkgs...), pkgs
}

const nokmemKubelet = "#!/bin/sh\necho 'Kubernetes v1.12.4-nokmem'\n"

// signedDNFRoot is an installroot whose only repositories are the
// stand-in upstream one (unsigned, gpgcheck=0) and the nokmem one, with the
// published nokmem.repo (gpgcheck=1, repo_gpgcheck=1) pointing at dir.
func signedDNFRoot(t *testing.T, dir, up string) *dnfRoot {
	t.Helper()
	repo, err := os.ReadFile(filepath.Join(dir, RepoFileName))
	if err != nil {
		t.Fatal(err)
	}
	return newDNFRoot(t, map[string]string{
		"upstream": repoFile("kubernetes", up, ""),
		"nokmem":   string(repo),
	})
}

// copyRepo copies a published repository (to tamper with the copy); the
// baseurl and gpgkey of its .repo file follow it.
func copyRepo(t *testing.T, r published) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "yum")
	if out, err := exec.Command("cp", "-a", r.dir, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	repo := filepath.Join(dst, RepoFileName)
	b, err := os.ReadFile(repo)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(repo, bytes.ReplaceAll(b, []byte("file://"+r.dir), []byte("file://"+dst)), 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

// resignMetadata remakes the metadata of dir and signs repomd.xml with the
// good key: what is left to refuse is the RPM itself.
func resignMetadata(t *testing.T, r published, dir string) {
	t.Helper()
	if err := os.RemoveAll(filepath.Join(dir, RepoData)); err != nil {
		t.Fatal(err)
	}
	if err := CreateRepo(context.Background(), dir, when); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(dir, RepoData, "repomd.xml"))
	if err != nil {
		t.Fatal(err)
	}
	sig, err := r.gpg.ArmoredSign(md, when)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, RepoData, RepoMDSig), sig, 0o644); err != nil {
		t.Fatal(err)
	}
}

// rpm -Kv shows a V4 RSA/SHA256 signature by the release key on header and
// package, OK once the key is imported, NOKEY before.
func TestSignedRPMsRpmK(t *testing.T) {
	r, _ := signedRepo(t)
	root := t.TempDir()
	for _, name := range r.rpms {
		out, _ := exec.Command("rpm", "--root", root, "-Kv", filepath.Join(r.dir, name)).CombinedOutput()
		if !strings.Contains(string(out), "V4 RSA/SHA256 Signature, key ID "+r.gpg.KeyID()[8:]+": NOKEY") {
			t.Errorf("rpm -Kv %s before the key is imported:\n%s", name, out)
		}
	}
	run(t, "rpm", "--root", root, "--import", filepath.Join(r.dir, GPGKeyFile))
	for _, name := range r.rpms {
		out := run(t, "rpm", "--root", root, "-Kv", filepath.Join(r.dir, name))
		for _, want := range []string{"Header V4 RSA/SHA256 Signature, key ID " + r.gpg.KeyID()[8:] + ": OK", "V4 RSA/SHA256 Signature, key ID " + r.gpg.KeyID()[8:] + ": OK", "Payload SHA256 digest: OK"} {
			if !strings.Contains(out, want) {
				t.Errorf("rpm -Kv %s lacks %q:\n%s", name, want, out)
			}
		}
	}
	// The same inputs give the same signed bytes.
	again, _ := signedRepo(t)
	for _, name := range r.rpms {
		a, _ := os.ReadFile(filepath.Join(r.dir, name))
		b, _ := os.ReadFile(filepath.Join(again.dir, name))
		if !bytes.Equal(a, b) {
			t.Errorf("%s: two signed builds differ", name)
		}
	}
}

// dnf with the published nokmem.repo (gpgcheck=1, repo_gpgcheck=1): the
// signed packages install; a tampered RPM, an RPM signed with another key
// and a tampered repomd.xml are refused.
func TestSignedRepoDNF(t *testing.T) {
	r, pkgs := signedRepo(t)
	up := upstreamRepo(t)
	if b, _ := os.ReadFile(filepath.Join(r.dir, RepoFileName)); !regexp.MustCompile(`(?m)^gpgcheck=1$`).Match(b) ||
		!regexp.MustCompile(`(?m)^repo_gpgcheck=1$`).Match(b) || !bytes.Contains(b, []byte("gpgkey=file://"+r.dir+"/"+GPGKeyFile)) {
		t.Fatalf("%s:\n%s", RepoFileName, b)
	}
	d := signedDNFRoot(t, r.dir, up)
	d.mustDNF("kubernetes,nokmem", "install", "kubelet-1.12.4-"+pkgs[0].Release, "nokmem-node", "nokmem-release-key")
	if got := d.installed("kubelet"); got != "1.12.4-"+pkgs[0].Release {
		t.Fatalf("kubelet %q", got)
	}
	if out := run(t, "rpm", "--root", d.root, "-q", "gpg-pubkey"); !strings.Contains(out, "gpg-pubkey-"+r.gpg.KeyID()[8:]) {
		t.Errorf("the release key is not in the installroot's rpm database: %s", out)
	}

	refused := func(name, dir, why string) {
		t.Helper()
		d := signedDNFRoot(t, dir, up)
		out, err := d.dnf("kubernetes,nokmem", "install", "kubelet-1.12.4-"+pkgs[0].Release)
		if err == nil {
			t.Errorf("%s: dnf installed it:\n%s", name, out)
		} else if !regexp.MustCompile(why).MatchString(out) {
			t.Errorf("%s: dnf failed, but not for the reason %q:\n%s", name, why, out)
		}
		t.Logf("%s: dnf refused it:\n%s", name, lastLines(out, 4))
		if got := d.installed("kubelet"); strings.Contains(got, "nokmem") {
			t.Errorf("%s: kubelet %s installed", name, got)
		}
	}
	// A byte of the payload changed; the metadata remade and signed again,
	// so only the RPM's own digests and signature can refuse it.
	tampered := copyRepo(t, r)
	kube := filepath.Join(tampered, pkgs[0].FileName())
	b, err := os.ReadFile(kube)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-40] ^= 0xff
	if err := os.WriteFile(kube, b, 0o644); err != nil {
		t.Fatal(err)
	}
	resignMetadata(t, r, tampered)
	refused("tampered RPM", tampered, `GPG check FAILED`)
	// The same package signed with another key.
	other := copyRepo(t, r)
	p := *pkgs[0]
	p.Sign = otherGPG(t).RPMSigner(when)
	if _, err := WriteFile(other, &p); err != nil {
		t.Fatal(err)
	}
	resignMetadata(t, r, other)
	refused("RPM signed with another key", other, `Public key for kubelet-\S+ is not installed`)
	// repomd.xml changed after it was signed.
	md := copyRepo(t, r)
	x, _ := os.ReadFile(filepath.Join(md, RepoData, "repomd.xml"))
	if err := os.WriteFile(filepath.Join(md, RepoData, "repomd.xml"), bytes.Replace(x, []byte("<revision>"), []byte("<revision>1"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	refused("tampered repomd.xml", md, `repomd.xml GPG signature verification error: Bad GPG signature`)
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}

// The config files (the kubelet's /etc/sysconfig/kubelet, the minisign key
// of nokmem-node, the OpenPGP key of nokmem-release-key) are
// %config(noreplace) in packages built by this package: each is edited on
// the node, then a package with a different body of that file is
// installed over it with dnf; the edit stays and the new body is written
// as .rpmnew. (With plain %config the edited file would be moved to
// .rpmsave and replaced; with the same body in both packages rpm keeps any
// edit, which is why the bodies differ.)
func TestConfigFilesSurviveUpgrade(t *testing.T) {
	r1, pkgs := signedRepo(t)
	for _, name := range r1.rpms {
		got := run(t, "rpm", "-qp", "--qf", `[%{FILENAMES} %{FILEFLAGS:fflags}\n]`, filepath.Join(r1.dir, name))
		for _, l := range strings.Split(strings.TrimSpace(got), "\n") {
			f := strings.Fields(l)
			config := f[0] == KubeletSysconfig || f[0] == NodePubKey || f[0] == ReleaseKeyPath
			if config != (len(f) == 2 && f[1] == "cn") {
				t.Errorf("%s: %q, want flags cn (config, noreplace) exactly for the config files", name, l)
			}
		}
	}
	up := upstreamRepo(t)
	d := signedDNFRoot(t, r1.dir, up)
	d.mustDNF("kubernetes", "install", "kubelet-1.12.4-0")
	edit := func(path, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(d.root, path), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	check := func(path, edited, shipped string) {
		t.Helper()
		if got, _ := os.ReadFile(filepath.Join(d.root, path)); string(got) != edited {
			t.Errorf("edited %s after the upgrade: %q, want the edit %q", path, got, edited)
		}
		if got, err := os.ReadFile(filepath.Join(d.root, path+".rpmnew")); err != nil || string(got) != shipped {
			t.Errorf("%s.rpmnew: %q, %v; want the new package's body %q", path, got, err, shipped)
		}
		if _, err := os.Stat(filepath.Join(d.root, path+".rpmsave")); err == nil {
			t.Errorf("%s.rpmsave exists: the edit was set aside", path)
		}
	}
	edited := "KUBELET_EXTRA_ARGS=--node-labels=pool=a\n"
	edit(KubeletSysconfig, edited)
	d.mustDNF("kubernetes,nokmem", "upgrade", "kubelet")
	if got := d.installed("kubelet"); got != "1.12.4-"+pkgs[0].Release {
		t.Fatalf("after dnf upgrade kubelet is %q", got)
	}
	check(KubeletSysconfig, edited, KubeletSysconfigBody)

	d.mustDNF("nokmem", "install", "nokmem-node", "nokmem-release-key")
	editedMinisign := "untrusted comment: the operator's key\nRWQ...\n"
	editedGPG := "-----BEGIN PGP PUBLIC KEY BLOCK-----\n(the operator's keys)\n"
	edit(NodePubKey, editedMinisign)
	edit(ReleaseKeyPath, editedGPG)
	// The next release: other keys in both packages.
	node2, err := Node{VerifyVersion: "v1.2.4", Verify: []byte("#!/bin/sh\n"), BundleFile: "nokmem-y.tar.gz", Bundle: []byte("b2"), PubKey: []byte("minisign key 2\n"), BuildTime: when}.Package()
	if err != nil {
		t.Fatal(err)
	}
	key2 := ReleaseKey{Version: node2.Version, Release: node2.Release, GPGPublic: []byte("gpg key 2\n"), BuildTime: when}.Package()
	r2 := publishTest(t, node2, key2)
	repo, _ := os.ReadFile(filepath.Join(r2.dir, RepoFileName))
	if err := os.WriteFile(filepath.Join(d.repos, "nokmem.repo"), repo, 0o644); err != nil {
		t.Fatal(err)
	}
	d.mustDNF("nokmem", "upgrade", "nokmem-node", "nokmem-release-key")
	if got := d.installed("nokmem-node"); got != "1.2.4-1" {
		t.Fatalf("nokmem-node %q after the upgrade", got)
	}
	check(NodePubKey, editedMinisign, "minisign key 2\n")
	check(ReleaseKeyPath, editedGPG, "gpg key 2\n")
}
