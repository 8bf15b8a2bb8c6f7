package pipeline

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/nokmem/nokmem/internal/bundle"
	"github.com/nokmem/nokmem/internal/pins"
	"github.com/nokmem/nokmem/internal/publish"
	"github.com/nokmem/nokmem/internal/release/signkey"
	"github.com/nokmem/nokmem/internal/rpmrepo"
	"github.com/nokmem/nokmem/internal/stepstamp"
)

// DefaultYumBaseURL is the baseurl= of the published nokmem.repo when the
// caller names none.
const DefaultYumBaseURL = "file:///srv/nokmem/yum"

// Yum says how the repository is signed and served.
type Yum struct {
	// GPG signs every RPM and repomd.xml (signkey.ChooseGPG).
	GPG signkey.GPGKey
	// BaseURL is where the repository will be served; DefaultYumBaseURL when empty.
	BaseURL string
	// BaseURLEnv names the setting of BaseURL, for the notes.
	BaseURLEnv string
	// Publish writes the repository (rpmrepo.Publish when nil: createrepo_c).
	Publish func(ctx context.Context, dest string, pkgs []*rpmrepo.Package, o rpmrepo.Options) (*rpmrepo.Published, error)
}

// AddTool records a program found in PATH by its path and identity.
func AddTool(s *publish.Stamp, name string) error {
	path, err := exec.LookPath(name)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	s.Add("tool "+name, []byte(path))
	return stepstamp.AddFileIdentity(s, "tool "+name+" binary", path)
}

// YumStep makes the RPMs and the repository from pair's published bundle
// (see BuildYum) unless its record (_build/stamps/yum) shows the same
// inputs (the bundle step's record, the source date, the createrepo_c
// binary, the signing key and the build tool) and every file under
// _output/yum as it left them.
func (p *Publisher) YumStep(ctx context.Context, pair pins.Bundle, y Yum) error {
	in, err := p.StepInputsAfter(map[string]string{"bundle": p.Layout().Record("bundle")})
	if err != nil {
		return err
	}
	if err := AddTool(in, "createrepo_c"); err != nil {
		return err
	}
	s := &stepstamp.Step{Name: "yum repository", File: p.Layout().Record("yum"), Inputs: in, Outputs: []string{p.Layout().Yum()}}
	return p.RunStep(s, func() error { return p.BuildYum(ctx, pair, y) })
}

// BuildYum makes, from pair's published bundle (checked with the public
// key first), the kubelet, nokmem-node and nokmem-release-key RPMs, each
// signed with y.GPG, and publishes them as the yum repository
// _output/yum (rpmrepo.Publish: metadata, signatures, SHA256SUMS; the old
// repository stays until the new one is complete). Build, file and
// signature times are the source date. It prints the repository's notes
// on Notes.
func (p *Publisher) BuildYum(ctx context.Context, pair pins.Bundle, y Yum) error {
	start := time.Now()
	name, err := p.BundleName(pair)
	if err != nil {
		return err
	}
	out := p.Layout().Bundle()
	dir := filepath.Join(out, name)
	m, err := bundle.Verify(dir, p.Key.Public)
	if err != nil {
		return fmt.Errorf("yum: the published bundle: %w", err)
	}
	_, kubeSet, err := p.Load(Kubelet.Name, pair.Kubelet)
	if err != nil {
		return err
	}
	read := func(path string) ([]byte, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("yum: %w", err)
		}
		return b, nil
	}
	kubelet, err := read(filepath.Join(dir, "kubelet"))
	if err != nil {
		return err
	}
	verifyBin, err := read(filepath.Join(dir, "verify"))
	if err != nil {
		return err
	}
	tgz, err := read(filepath.Join(out, name+bundle.TarExt))
	if err != nil {
		return err
	}
	pubKey, err := read(p.Key.Public)
	if err != nil {
		return err
	}
	gpgPub, err := y.GPG.Public()
	if err != nil {
		return err
	}
	node, err := rpmrepo.Node{
		VerifyVersion: m.Binary("verify").Version,
		Verify:        verifyBin,
		BundleFile:    name + bundle.TarExt,
		Bundle:        tgz,
		PubKey:        pubKey,
		BuildTime:     p.SourceDate,
	}.Package()
	if err != nil {
		return err
	}
	keyPkg := rpmrepo.ReleaseKey{Version: node.Version, Release: node.Release, GPGPublic: gpgPub, BuildTime: p.SourceDate}.Package()
	kube := rpmrepo.Kubelet{
		Version:     pair.Kubelet,
		Release:     rpmrepo.KubeletRelease(p.SourceDate, kubelet),
		Binary:      kubelet,
		PatchMarker: kubeSet.Marker(),
		BuildTime:   p.SourceDate,
	}.Package()
	baseURL := y.BaseURL
	if baseURL == "" {
		baseURL = DefaultYumBaseURL
	}
	publishRepo := y.Publish
	if publishRepo == nil {
		publishRepo = rpmrepo.Publish
	}
	pubd, err := publishRepo(ctx, p.Layout().Yum(), []*rpmrepo.Package{kube, node, keyPkg},
		rpmrepo.Options{Key: p.Key.Secret, Pub: p.Key.Public, GPG: y.GPG.Key, BaseURL: baseURL, SourceDate: p.SourceDate})
	if err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n=== yum repository: %s ===\n", pubd.Dir)
	for _, r := range pubd.RPMs {
		fi, err := os.Stat(filepath.Join(pubd.Dir, r))
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "  %-60s %6.1f MB\n", r, float64(fi.Size())/1e6)
	}
	fmt.Fprintf(&b, "RPMs and repomd.xml signed with OpenPGP key %s (%s) in %s; SHA256SUMS signed with %s; createrepo_c took %s; yum step took %s\n",
		y.GPG.Fingerprint(), y.GPG.Source, pubd.SignTook.Round(time.Millisecond), p.Key.Public, pubd.RepoTook.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	fmt.Fprintf(&b, "on a node: %s (baseurl %s; set %s), then install exactly the packages of %s (docs/fleet.md)\n",
		rpmrepo.RepoFileName, baseURL, y.BaseURLEnv, rpmrepo.PackagesFile)
	p.note("%s", b.String())
	return nil
}
