package rpmrepo

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nokmem/nokmem/internal/release/gpgsign"
	"github.com/nokmem/nokmem/internal/release/sign"
	"github.com/nokmem/nokmem/internal/testenv"
)

var when = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

func testKubelet(release string, body string) *Package {
	return Kubelet{Version: "v1.12.4", Release: release, Binary: []byte(body), PatchMarker: "nokmem.test", BuildTime: when}.Package()
}

// The kubelet package owns what the el7 repository's kubelet owns, with
// its modes, and nothing else (10-kubeadm.conf is kubeadm's).
func TestKubeletLayout(t *testing.T) {
	p := testKubelet("1.nokmem", "#!/bin/sh\n")
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, f := range p.Files {
		kind := "file"
		switch {
		case f.Dir:
			kind = "dir"
		case f.Config:
			kind = "config"
		}
		got[f.Path] = kind + " " + f.Mode.String()
	}
	want := map[string]string{
		"/usr/bin/kubelet":                        "file -rwxr-xr-x",
		"/usr/lib/systemd/system/kubelet.service": "file -rw-r--r--",
		"/etc/kubernetes/manifests":               "dir -rwxr-xr-x",
		"/etc/sysconfig/kubelet":                  "config -rw-r--r--",
	}
	if len(got) != len(want) {
		t.Errorf("files %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
	if p.Name != "kubelet" || p.Version != "1.12.4" || p.FileName() != "kubelet-1.12.4-1.nokmem.x86_64.rpm" {
		t.Errorf("name %s version %s file %s", p.Name, p.Version, p.FileName())
	}
	if !slices.Contains(p.Requires, "kubernetes-cni >= 0.6.0") || !slices.Contains(p.Provides, "nokmem-kubelet = 1.12.4-1.nokmem") {
		t.Errorf("requires %v provides %v", p.Requires, p.Provides)
	}
}

// The same inputs give the same bytes; another source date does not.
func TestReproducible(t *testing.T) {
	build := func(p *Package) []byte {
		var b bytes.Buffer
		if err := p.Write(&b); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	a, b := build(testKubelet("1.nokmem", "kubelet")), build(testKubelet("1.nokmem", "kubelet"))
	if !bytes.Equal(a, b) {
		t.Fatal("two builds of the same package differ")
	}
	later := testKubelet("1.nokmem", "kubelet")
	later.BuildTime = when.Add(time.Second)
	if bytes.Equal(a, build(later)) {
		t.Fatal("the build time does not enter the package")
	}
	// The order files are listed in does not matter: the payload is sorted.
	shuffled := testKubelet("1.nokmem", "kubelet")
	slices.Reverse(shuffled.Files)
	if !bytes.Equal(a, build(shuffled)) {
		t.Fatal("the payload depends on the order files were added")
	}
}

func TestValidateRejects(t *testing.T) {
	for name, mutate := range map[string]func(p *Package){
		"dash in release":   func(p *Package) { p.Release = "1-nokmem" },
		"dash in version":   func(p *Package) { p.Version = "1.12.4-0" },
		"relative path":     func(p *Package) { p.Files[0].Path = "usr/bin/x" },
		"unclean path":      func(p *Package) { p.Files[0].Path = "/usr/bin/../x" },
		"duplicate":         func(p *Package) { p.Files = append(p.Files, p.Files[0]) },
		"setuid":            func(p *Package) { p.Files[2].Mode |= os.ModeSetuid },
		"world-writable":    func(p *Package) { p.Files[2].Mode = 0o777 },
		"config directory":  func(p *Package) { p.Files[0].Config = true },
		"no build time":     func(p *Package) { p.BuildTime = time.Time{} },
		"bad relation":      func(p *Package) { p.Requires = []string{"a >>= 1"} },
		"dir with content":  func(p *Package) { p.Files[0].Body = []byte("x") },
		"no files":          func(p *Package) { p.Files = nil },
		"blank in name":     func(p *Package) { p.Name = "kube let" },
		"summary missing":   func(p *Package) { p.Summary = "" },
		"link with content": func(p *Package) { p.Files[2].Link = "/bin/true" },
	} {
		t.Run(name, func(t *testing.T) {
			p := testKubelet("1.nokmem", "kubelet")
			mutate(p)
			err := p.Validate()
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Validate: %v, want ErrInvalid", err)
			}
			if err := p.Write(&bytes.Buffer{}); err == nil {
				t.Fatal("Write built an invalid package")
			}
		})
	}
}

func TestNodeVersion(t *testing.T) {
	for in, want := range map[string][2]string{
		"v1.2.3":                                   {"1.2.3", "1"},
		"v1.2.3-rc.1":                              {"1.2.3~rc.1", "1"},
		"v0.0.0-20261204121706-9df5b1bb5e71":       {"0.0.0", "0.20261204121706.git9df5b1bb5e71"},
		"v1.2.4-0.20261204121706-9df5b1bb5e71":     {"1.2.3", "1.20261204121706.git9df5b1bb5e71"},
		"v0.0.0-20261204121706-9df5b1bb5e71-dirty": {"0.0.0", "0.20261204121706.git9df5b1bb5e71.dirty"},
	} {
		v, r, err := NodeVersion(in)
		if err != nil || v != want[0] || r != want[1] {
			t.Errorf("NodeVersion(%q) = %q, %q, %v; want %q, %q", in, v, r, err, want[0], want[1])
		}
	}
	for _, bad := range []string{"", "1.2.3", "latest", "v1.2"} {
		if _, _, err := NodeVersion(bad); err == nil {
			t.Errorf("NodeVersion(%q) accepted", bad)
		}
	}
}

func TestNodeLayout(t *testing.T) {
	p, err := Node{VerifyVersion: "v1.2.3", Verify: []byte("v"), BundleFile: "nokmem-x.tar.gz", Bundle: []byte("b"), PubKey: []byte("k"), BuildTime: when}.Package()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range p.Files {
		paths = append(paths, f.Path)
		if !strings.HasPrefix(f.Path, "/opt/nokmem") && !strings.HasPrefix(f.Path, "/etc/nokmem") {
			t.Errorf("%s outside /opt/nokmem and /etc/nokmem", f.Path)
		}
	}
	for _, want := range []string{NodeVerify, NodePubKey, NodeBundleLink, "/opt/nokmem/bundle/nokmem-x.tar.gz"} {
		if !slices.Contains(paths, want) {
			t.Errorf("no %s in %v", want, paths)
		}
	}
	for _, bad := range []string{"", "../x.tar.gz", "current.tar.gz"} {
		if _, err := (Node{VerifyVersion: "v1.2.3", BundleFile: bad, BuildTime: when}).Package(); err == nil {
			t.Errorf("bundle file %q accepted", bad)
		}
	}
}

// Check catches a changed RPM, an unlisted RPM, a bad signature and a
// changed repomd.xml, on a repository Publish wrote.
func TestCheckCatches(t *testing.T) {
	r := publishTest(t, testKubelet("1.nokmem", "kubelet"))
	repo, pub := r.dir, r.pub
	if err := Check(repo, pub); err != nil {
		t.Fatalf("Check on a good repo: %v", err)
	}
	other := testKubelet("0", "stock")
	if _, err := WriteFile(repo, other); err != nil {
		t.Fatal(err)
	}
	if err := Check(repo, pub); err == nil || !strings.Contains(err.Error(), other.FileName()) {
		t.Errorf("Check with an unlisted RPM: %v", err)
	}
	os.Remove(filepath.Join(repo, other.FileName()))
	path := filepath.Join(repo, r.rpms[0])
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("tampered"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Check(repo, pub); err == nil {
		t.Error("Check passed a changed RPM")
	}
	if err := os.WriteFile(path, good, 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	key2, pub2 := filepath.Join(dir, "k2"), filepath.Join(dir, "k2.pub")
	if err := sign.GenerateKey(key2, pub2); err != nil {
		t.Fatal(err)
	}
	if err := Check(repo, pub2); err == nil {
		t.Error("Check passed a signature by another key")
	}
	md := filepath.Join(repo, RepoData, "repomd.xml")
	b, _ := os.ReadFile(md)
	if err := os.WriteFile(md, append(b, ' '), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Check(repo, pub); !errors.Is(err, gpgsign.ErrBadSignature) {
		t.Errorf("Check with a changed repomd.xml: %v, want a bad OpenPGP signature", err)
	}
}

// The kubelet release derived from the build sorts, by rpm's own
// comparison, above the el7 repository's releases and the hand-set release
// of earlier builds, and a later build above an earlier one.
func TestKubeletRelease(t *testing.T) {
	rel := KubeletRelease(when, []byte("kubelet"))
	if !regexp.MustCompile(`^1\.nokmem\.20261204120000\.[0-9a-f]{8}$`).MatchString(rel) {
		t.Fatalf("KubeletRelease = %q", rel)
	}
	if p := testKubelet(rel, "kubelet"); p.Validate() != nil {
		t.Fatalf("release %q: %v", rel, p.Validate())
	}
	if KubeletRelease(when, []byte("other")) == rel {
		t.Error("another binary, the same release")
	}
	testenv.RequireCommand(t, "rpm")
	later := KubeletRelease(when.Add(time.Hour), []byte("kubelet"))
	for _, c := range [][2]string{{rel, "0"}, {rel, "00"}, {rel, "1.nokmem"}, {later, rel}, {later, KubeletRelease(when, []byte("zzz"))}} {
		out, err := exec.Command("rpm", "--eval", fmt.Sprintf(`%%{lua:print(rpm.vercmp("1.12.4-%s", "1.12.4-%s"))}`, c[0], c[1])).Output()
		if err != nil || strings.TrimSpace(string(out)) != "1" {
			t.Errorf("rpm.vercmp(%s, %s) = %s (%v), want 1", c[0], c[1], out, err)
		}
	}
}
