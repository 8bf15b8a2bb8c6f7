//go:build mage

package main

import (
	"context"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"

	"github.com/nokmem/nokmem/internal/layout"
	"github.com/nokmem/nokmem/internal/pipeline"
	"github.com/nokmem/nokmem/internal/publish"
	"github.com/nokmem/nokmem/internal/release/signkey"
	"github.com/nokmem/nokmem/internal/stepstamp"
)

// repo is the layout of the repository: mage runs targets in its root.
var repo = layout.New(".")

// stampsDir keeps the records of the steps after the binaries (release
// sets, verify, bundle, yum), by which an unchanged rerun skips them.
var stampsDir = repo.Stamps()

// Step record files, one per step.
var (
	verifyRecord = repo.Record("verify")
	bundleRecord = repo.Record("bundle")
	yumRecord    = repo.Record("yum")
)

// runStep runs do unless the step's record shows it up to date (pipeline.RunStep).
func runStep(s *stepstamp.Step, do func() error) error { return newPipeline().RunStep(s, do) }

// newPublisher is the pipeline's publisher with the signing key k, the
// pinned vulnerability database's accounts and this build tool's identity.
func newPublisher(k signkey.Key) (*pipeline.Publisher, error) {
	id, err := builderID()
	if err != nil {
		return nil, err
	}
	return &pipeline.Publisher{Pipeline: newPipeline(), Key: k, Account: writeAccount, BuilderID: id, Program: pipeline.VerifyProgram{}}, nil
}

// stepInputs starts a step's input stamp with what every step depends on
// (pipeline.Publisher.StepInputs).
func stepInputs(k signkey.Key) (*publish.Stamp, error) {
	p, err := newPublisher(k)
	if err != nil {
		return nil, err
	}
	return p.StepInputs()
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
