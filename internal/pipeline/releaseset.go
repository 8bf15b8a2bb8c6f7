package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/nokmem/nokmem/internal/atomicfile"
	"github.com/nokmem/nokmem/internal/publish"
	"github.com/nokmem/nokmem/internal/release"
	"github.com/nokmem/nokmem/internal/release/inputs"
	"github.com/nokmem/nokmem/internal/release/signkey"
	"github.com/nokmem/nokmem/internal/srctree"
	"github.com/nokmem/nokmem/internal/stepstamp"
)

// Publisher publishes what follows the binaries (release sets, the verify
// program, the node bundle, the RPMs and the yum repository), each as a
// step that is skipped while its record (_build/stamps) matches.
type Publisher struct {
	*Pipeline
	// Key signs every release set, the bundle and the repository's SHA256SUMS.
	Key signkey.Key
	// Account writes the vulnerability account (VULNERABILITIES.json and
	// .md) of the artifacts in dir built from in, before the set is signed.
	Account func(dir string, in *inputs.Inputs, artifacts []string) error
	// BuilderID identifies the build tool: a new one runs every step again.
	BuilderID []byte
	// Program builds the verify node program.
	Program NodeProgram
	// SourceDate is the time of every file in a bundle tarball and the
	// RPMs (HEAD's commit time or SOURCE_DATE_EPOCH in the magefiles).
	SourceDate time.Time
	// Notes receives the release notes of the bundle and the repository
	// (stdout in the magefiles); nothing when nil.
	Notes io.Writer
}

// StepInputs starts a step's input stamp with what every step depends on:
// the build tool, the signing key (its id, files and the release setting)
// and the pinned vulnerability database every account is made from.
func (p *Publisher) StepInputs() (*publish.Stamp, error) {
	s := &publish.Stamp{}
	k := p.Key
	s.Add("builder", p.BuilderID)
	s.Add("signing key", []byte(fmt.Sprintf("id=%s dev=%v secret=%s %s=%q", k.ID, k.Dev, k.Secret, signkey.ReleaseEnv, os.Getenv(signkey.ReleaseEnv))))
	if err := s.AddFile("signing public key", k.Public); err != nil {
		return nil, err
	}
	if err := stepstamp.AddFileIdentity(s, "signing secret key", k.Secret); err != nil {
		return nil, err
	}
	for _, f := range []string{"lock.yaml", "supplement.yaml", "vex.yaml"} {
		if err := s.AddFile("vulndb "+f, filepath.Join(p.PinsDir(), "vulndb", f)); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// ReleaseRecord is the record of the release set of project@version.
func (p *Publisher) ReleaseRecord(project, version string) string {
	return p.Layout().Record("release-" + project + "-" + version)
}

// ReleaseStep writes the release set of _output/<project>/<version>
// unless its record shows the same artifact folder (its INPUTS stamp and
// every file as the last run left it), key and build tool.
func (p *Publisher) ReleaseStep(ctx context.Context, project, version string) error {
	dir := p.Layout().Output(project, version)
	in, err := p.StepInputs()
	if err != nil {
		return err
	}
	if err := in.AddFile("artifact inputs", filepath.Join(dir, publish.StampFile)); err != nil {
		return fmt.Errorf("release %s %s: build it first: %w", project, version, err)
	}
	s := &stepstamp.Step{Name: "release " + project + " " + version, File: p.ReleaseRecord(project, version), Inputs: in, Outputs: []string{dir}}
	return p.RunStep(s, func() error { return p.WriteRelease(ctx, project, version) })
}

// WriteRelease fills the release inputs of _output/<project>/<version>
// from the lock, the patches and the build settings, writes the
// vulnerability account and the set (which signs the account with the
// rest) and verifies it. Nothing is written unless the lock, the patches,
// the artifact folder and the system packages are all there.
func (p *Publisher) WriteRelease(ctx context.Context, project, version string) error {
	start := time.Now()
	l, set, err := p.Load(project, version)
	if err != nil {
		return err
	}
	dir := p.Layout().Output(project, version)
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("release %s %s: build it first: %w", project, version, err)
	}
	// The same spec the build uses; paths do not enter the record.
	spec, err := Spec(l, srctree.Tree{}, set.Marker(), ".")
	if err != nil {
		return err
	}
	spec.Go = "go"
	in, err := inputs.FromBuild(l, set.Dir, spec)
	if err != nil {
		return err
	}
	if in.SystemPackages, err = p.Builder.SystemPackages(ctx, l); err != nil {
		return fmt.Errorf("release %s %s: %w", project, version, err)
	}
	var artifacts []string
	for _, pkg := range l.Build.Packages {
		artifacts = append(artifacts, pkg.Output)
	}
	if err := p.Account(dir, in, artifacts); err != nil {
		return fmt.Errorf("release %s %s: %w", project, version, err)
	}
	if err := release.Write(dir, in, artifacts, p.Key.Secret); err != nil {
		return err
	}
	if err := release.Verify(dir, p.Key.Public); err != nil {
		return fmt.Errorf("release %s %s: the set just written does not verify: %w", project, version, err)
	}
	p.log().Info("release set written", "dir", dir, "artifacts", artifacts, "modules", len(in.Vendor)+2,
		"patches", len(in.Patches), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// PublishPublicKey copies the signing public key to
// _output/nokmem-release.pub (atomically: a reader sees the old or the new
// key), unless that copy already holds it (rewriting it would change
// nothing but its time).
func (p *Publisher) PublishPublicKey() error {
	data, err := os.ReadFile(p.Key.Public)
	if err != nil {
		return fmt.Errorf("publish the public key: %w", err)
	}
	dst := p.Layout().ReleasePub()
	if old, err := os.ReadFile(dst); err == nil && bytes.Equal(old, data) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(dst, data, 0o644); err != nil {
		return fmt.Errorf("publish the public key %s: %w", p.Key.Public, err)
	}
	return nil
}
