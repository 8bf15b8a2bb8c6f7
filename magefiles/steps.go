//go:build mage

package main

import (
	"context"
	"debug/elf"
	"fmt"
	"os"

	"github.com/nokmem/nokmem/internal/layout"
	"github.com/nokmem/nokmem/internal/pipeline"
)

// repo is the layout of the repository: mage runs targets in its root.
var repo = layout.New(".")

// stampsDir keeps the step records (pipeline.RunStep) and the builder's
// cache of system package versions.
var stampsDir = repo.Stamps()

// newPublisher is the pipeline's publisher: the signing key releaseKey
// chooses, the pinned vulnerability database's accounts, this build
// tool's identity, verify built by verifybuild, the source date, and the
// release notes on stdout.
func newPublisher(ctx context.Context) (*pipeline.Publisher, error) {
	k, err := releaseKey()
	if err != nil {
		return nil, err
	}
	id, err := builderID()
	if err != nil {
		return nil, err
	}
	date, err := sourceDate()
	if err != nil {
		return nil, err
	}
	return &pipeline.Publisher{Pipeline: newPipeline(), Key: k, Account: writeAccount, BuilderID: id,
		Program: pipeline.VerifyProgram{}, SourceDate: date, Notes: os.Stdout}, nil
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
