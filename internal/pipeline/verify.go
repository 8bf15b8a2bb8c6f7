package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/nokmem/nokmem/internal/publish"
	"github.com/nokmem/nokmem/internal/release"
	"github.com/nokmem/nokmem/internal/release/inputs"
	"github.com/nokmem/nokmem/internal/stepstamp"
	"github.com/nokmem/nokmem/internal/verifybuild"
)

// NodeProgram builds this repository's own node program, verify: the go
// and git runs of verifybuild behind an interface, so that tests fake them.
type NodeProgram interface {
	// SourceFiles lists the repository files the program is built from.
	SourceFiles(ctx context.Context, goBin, root string) ([]string, error)
	// SourceStamp is the version the binary is stamped with.
	SourceStamp(ctx context.Context, root string, files []string, bundleName string) (verifybuild.Stamp, error)
	// Build runs the build.
	Build(ctx context.Context, s verifybuild.Spec) error
	// Inputs are the release inputs (module graph, toolchain, command line).
	Inputs(ctx context.Context, s verifybuild.Spec, l *verifybuild.Lock, files []string) (*inputs.Inputs, error)
}

// VerifyProgram is the NodeProgram of the build: verifybuild itself.
type VerifyProgram struct{}

// SourceFiles implements NodeProgram.
func (VerifyProgram) SourceFiles(ctx context.Context, goBin, root string) ([]string, error) {
	return verifybuild.SourceFiles(ctx, goBin, root)
}

// SourceStamp implements NodeProgram.
func (VerifyProgram) SourceStamp(ctx context.Context, root string, files []string, bundleName string) (verifybuild.Stamp, error) {
	return verifybuild.SourceStamp(ctx, root, files, bundleName)
}

// Build implements NodeProgram.
func (VerifyProgram) Build(ctx context.Context, s verifybuild.Spec) error {
	return verifybuild.Build(ctx, s)
}

// Inputs implements NodeProgram.
func (VerifyProgram) Inputs(ctx context.Context, s verifybuild.Spec, l *verifybuild.Lock, files []string) (*inputs.Inputs, error) {
	return verifybuild.Inputs(ctx, s, l, files)
}

// VerifyLockFile is verify's lock (its pinned toolchain).
func (p *Pipeline) VerifyLockFile() string { return filepath.Join(p.Root, verifybuild.LockFile) }

// VerifyChecksumsFile is verify's committed sha256.
func (p *Pipeline) VerifyChecksumsFile() string {
	return filepath.Join(p.Root, verifybuild.ChecksumsFile)
}

// verifySources lists the source files of the last verify build, one a line.
func (p *Publisher) verifySources() string { return p.Layout().Record("verify") + ".sources" }

// VerifyStep builds verify for the bundle name (see BuildVerify) unless
// its record (_build/stamps/verify) shows the same inputs and outputs:
// the content of every source file of the last build (go.mod, go.sum,
// the packages verify imports), the file names in those packages'
// folders, the stamped version, the lock, the GO* environment, the bundle
// name, the signing key and the build tool, and the identity of every
// file in _output/verify. The check runs no go command.
func (p *Publisher) VerifyStep(ctx context.Context, bundleName string) error {
	var files []string
	if b, err := os.ReadFile(p.verifySources()); err == nil {
		files = strings.Fields(string(b))
	}
	in, err := p.verifyInputs(ctx, bundleName, files)
	if err != nil {
		return err
	}
	s := &stepstamp.Step{Name: "verify", File: p.Layout().Record("verify"), Inputs: in, Outputs: []string{p.Layout().Verify()}}
	return p.RunStep(s, func() error {
		_, built, err := p.BuildVerify(ctx, p.Layout().Verify(), bundleName)
		if err != nil {
			return err
		}
		if !slices.Equal(built, files) {
			// New source list: stamp what the build read.
			if s.Inputs, err = p.verifyInputs(ctx, bundleName, built); err != nil {
				return err
			}
		}
		if err := os.MkdirAll(filepath.Dir(p.verifySources()), 0o755); err != nil {
			return err
		}
		return os.WriteFile(p.verifySources(), []byte(strings.Join(built, "\n")+"\n"), 0o644)
	})
}

// verifyInputs is the input stamp of the verify build from files, its
// source files (none: no earlier build, the stamp then matches no record).
func (p *Publisher) verifyInputs(ctx context.Context, bundleName string, files []string) (*publish.Stamp, error) {
	in, err := p.StepInputs()
	if err != nil {
		return nil, err
	}
	if err := in.AddFile("lock", p.VerifyLockFile()); err != nil {
		return nil, err
	}
	AddGoEnv(in)
	in.Add("bundle name", []byte(bundleName))
	if len(files) == 0 {
		return in, nil
	}
	in.Add("source list", []byte(strings.Join(files, "\n")))
	dirs := map[string]bool{}
	for _, f := range files {
		// A source of the last build that is gone is a changed input (the
		// stamp then matches no record and the build runs), not an error.
		if err := in.AddFile("source "+f, filepath.Join(p.Root, f)); errors.Is(err, os.ErrNotExist) {
			in.Add("source "+f, []byte("missing"))
		} else if err != nil {
			return nil, err
		}
		if strings.HasSuffix(f, ".go") {
			dirs[filepath.Dir(f)] = true
		}
	}
	for d := range dirs {
		// A file added to a package folder may join the build.
		entries, err := os.ReadDir(filepath.Join(p.Root, d))
		if errors.Is(err, os.ErrNotExist) {
			in.Add("folder "+d, []byte("missing"))
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("verify sources: %w", err)
		}
		var names []string
		for _, e := range entries {
			if !strings.HasSuffix(e.Name(), "_test.go") {
				names = append(names, e.Name())
			}
		}
		in.Add("folder "+d, []byte(strings.Join(names, "\n")))
	}
	st, err := p.Program.SourceStamp(ctx, p.Root, files, bundleName)
	if err != nil {
		return nil, err
	}
	in.Add("version", []byte(st.Version+" "+st.Commit+" "+st.CommitTime.String()))
	return in, nil
}

// AddGoEnv records the GO* settings of the environment that reach a go
// build (caches and paths left out: they do not change its output).
func AddGoEnv(s *publish.Stamp) {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "GOCACHE" || k == "GOMODCACHE" || k == "GOPATH" || k == "GOROOT" || k == "GOTMPDIR" || k == "GOENV":
		case strings.HasPrefix(k, "GO") || strings.HasPrefix(k, "CGO_"):
			env = append(env, kv)
		}
	}
	sort.Strings(env)
	s.Add("go environment", []byte(strings.Join(env, "\n")))
}

// BuildVerify builds verify (stamped with its source version and the
// bundle name) in a scratch folder under _build, checks it (pinned Go,
// static ELF), publishes it atomically into dest and writes its release
// set there (vulnerability account, SBOM, provenance, signature), checked
// with the public key. It returns its sha256 by file name and its source
// files. A sha256 other than the committed one is a warning here (the
// gate is Checksums' caller).
func (p *Publisher) BuildVerify(ctx context.Context, dest, bundleName string) (map[string]string, []string, error) {
	l, err := verifybuild.LoadLock(p.VerifyLockFile())
	if err != nil {
		return nil, nil, err
	}
	goBin, err := p.Inputs.Toolchain(ctx, l.Toolchain)
	if err != nil {
		return nil, nil, err
	}
	tv, err := goVersion(l.Toolchain)
	if err != nil {
		return nil, nil, err
	}
	files, err := p.Program.SourceFiles(ctx, goBin, p.Root)
	if err != nil {
		return nil, nil, err
	}
	stamp, err := p.Program.SourceStamp(ctx, p.Root, files, bundleName)
	if err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(p.Layout().BuildRoot(), 0o755); err != nil {
		return nil, nil, err
	}
	tmp, err := os.MkdirTemp(p.Layout().BuildRoot(), "verify-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(tmp)
	bin, err := filepath.Abs(filepath.Join(tmp, "verify"))
	if err != nil {
		return nil, nil, err
	}
	spec := verifybuild.Spec{Go: goBin, Root: p.Root, Out: bin, Stamp: stamp, GoVers: tv}
	if err := p.Program.Build(ctx, spec); err != nil {
		return nil, nil, err
	}
	if err := p.Builder.Check(ctx, Check{GoBin: goBin, Binary: bin, GoVersion: tv, Static: true}); err != nil {
		return nil, nil, err
	}
	in, err := p.Program.Inputs(ctx, spec, l, files)
	if err != nil {
		return nil, nil, err
	}
	// The command line with the published name, not the scratch path
	// (random), so that the same inputs give the same INPUTS file.
	named := spec
	named.Out = "verify"
	ps := &publish.Stamp{}
	ps.Add("verify", []byte(strings.Join(named.Args(), " ")))
	sha, err := publish.Publish(dest, []string{bin}, ps)
	if err != nil {
		return nil, nil, err
	}
	if err := p.Account(dest, in, []string{"verify"}); err != nil {
		return nil, nil, err
	}
	if err := release.Write(dest, in, []string{"verify"}, p.Key.Secret); err != nil {
		return nil, nil, err
	}
	if err := release.Verify(dest, p.Key.Public); err != nil {
		return nil, nil, fmt.Errorf("verify release set: %w", err)
	}
	if err := publish.CheckExpected(p.VerifyChecksumsFile(), sha); err != nil {
		p.say("WARNING: verify: %v\n  (expected while verify's sources change; the gate is `go tool mage verify:checksums`)", err)
	}
	p.say("verify: published %s (sha256 %s, %s, %s, %d modules in its SBOM)", dest, sha["verify"], stamp.Version, tv, len(in.Vendor))
	return sha, files, nil
}
