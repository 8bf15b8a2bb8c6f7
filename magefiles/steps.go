//go:build mage

package main

import (
	"context"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/nokmem/nokmem/internal/publish"
	"github.com/nokmem/nokmem/internal/release/signkey"
	"github.com/nokmem/nokmem/internal/stepstamp"
)

// stampsDir keeps the records of the steps after the binaries (release
// sets, verify, bundle, yum), by which an unchanged rerun skips them.
var stampsDir = filepath.Join("_build", "stamps")

// Step record files, one per step.
var (
	verifyRecord = filepath.Join(stampsDir, "verify")
	bundleRecord = filepath.Join(stampsDir, "bundle")
	yumRecord    = filepath.Join(stampsDir, "yum")
)

// releaseRecord is the record of the release set of project@version.
func releaseRecord(project, version string) string {
	return filepath.Join(stampsDir, "release-"+project+"-"+version)
}

// runStep runs do unless the step's record shows its inputs and outputs
// unchanged; either way it says so in one line. The record is removed
// before do and written after it succeeded, with s.Inputs as do left it.
func runStep(s *stepstamp.Step, do func() error) error {
	ok, why, err := s.Check()
	if err != nil {
		return err
	}
	if ok {
		fmt.Fprintf(os.Stderr, "%s: up to date, nothing to do (record %s)\n", s.Name, s.File)
		return nil
	}
	fmt.Fprintf(os.Stderr, "%s: running (%s)\n", s.Name, why)
	if err := s.Forget(); err != nil {
		return err
	}
	if err := do(); err != nil {
		return err
	}
	return s.Record()
}

// stepInputs starts a step's input stamp with what every step depends on:
// the build tool itself (this compiled magefile, with the internal
// packages it links) and the signing key (its id, files and the release
// setting).
func stepInputs(k signkey.Key) (*publish.Stamp, error) {
	s := &publish.Stamp{}
	id, err := builderID()
	if err != nil {
		return nil, err
	}
	s.Add("builder", id)
	s.Add("signing key", []byte(fmt.Sprintf("id=%s dev=%v secret=%s %s=%q", k.ID, k.Dev, k.Secret, signkey.ReleaseEnv, os.Getenv(signkey.ReleaseEnv))))
	if err := s.AddFile("signing public key", k.Public); err != nil {
		return nil, err
	}
	if err := stepstamp.AddFileIdentity(s, "signing secret key", k.Secret); err != nil {
		return nil, err
	}
	// Every release set and the bundle carry a vulnerability account made
	// from the pinned database, the supplement and the reviewed statements.
	for _, f := range []string{"lock.yaml", "supplement.yaml", "vex.yaml"} {
		if err := s.AddFile("vulndb "+f, filepath.Join(pinsDir, "vulndb", f)); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// stepInputsAfter starts the input stamp of a step that publishes what
// earlier steps made, with the source date as its file times: stepInputs,
// the records of those steps (name → record file) and the source date.
func stepInputsAfter(ctx context.Context, after map[string]string) (*publish.Stamp, error) {
	k, err := releaseKey()
	if err != nil {
		return nil, err
	}
	in, err := stepInputs(k)
	if err != nil {
		return nil, err
	}
	for name, record := range after {
		if err := stepstamp.AddRecord(in, "step "+name, record); err != nil {
			return nil, err
		}
	}
	mtime, err := sourceDate(ctx)
	if err != nil {
		return nil, err
	}
	in.Add("source date", []byte(mtime.String()))
	return in, nil
}

// addGoEnv records the GO* settings of the environment that reach a go
// build (caches and paths left out: they do not change its output).
func addGoEnv(s *publish.Stamp) {
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

// addTool records a program found in PATH by its path and identity.
func addTool(s *publish.Stamp, name string) error {
	p, err := exec.LookPath(name)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	s.Add("tool "+name, []byte(p))
	return stepstamp.AddFileIdentity(s, "tool "+name+" binary", p)
}

// builderID identifies this compiled magefile by the Go build ID in its
// ELF note (derived from the content of everything it links): mage links
// it again on every run, so its file identity changes, its build ID not.
func builderID() ([]byte, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	f, err := elf.Open(exe)
	if err != nil {
		return nil, fmt.Errorf("build tool %s: %w", exe, err)
	}
	defer f.Close()
	sec := f.Section(".note.go.buildid")
	if sec == nil {
		return nil, fmt.Errorf("build tool %s: no Go build id", exe)
	}
	return sec.Data()
}
