//go:build mage

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/magefile/mage/mg"

	"github.com/nokmem/nokmem/internal/pins"
	"github.com/nokmem/nokmem/internal/srctree"
	"github.com/nokmem/nokmem/internal/toolchain"
)

// Inputs prepares a build's inputs: the pinned toolchain and the source tree.
type Inputs mg.Namespace

// Assemble builds the GOPATH tree of project@version in
// _build/<project>/<version>/gopath from h1-verified modules, and prints
// {"gopath": ..., "root": ...} on stdout.
func (Inputs) Assemble(ctx context.Context, project, version string) error {
	start := time.Now()
	_, tree, err := assembleInputs(ctx, project, version)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "inputs %s %s: source tree assembled in %s: %s\n", project, version, time.Since(start).Round(time.Millisecond), tree.Root)
	return printJSON(map[string]string{"gopath": tree.GOPATH, "root": tree.Root})
}

// Toolchain fetches and checks the pinned Go toolchain of project@version
// and prints {"go": "<path of its bin/go>"} on stdout.
func (Inputs) Toolchain(ctx context.Context, project, version string) error {
	_, goBin, err := toolchainInputs(ctx, project, version)
	if err != nil {
		return err
	}
	return printJSON(map[string]string{"go": goBin})
}

// assembleInputs loads the lock and assembles a fresh source tree in the
// default build dir. Build targets in other magefiles call it from Go.
func assembleInputs(ctx context.Context, project, version string) (*pins.Lock, srctree.Tree, error) {
	l, err := pins.Load(pinsDir, project, version)
	if err != nil {
		return nil, srctree.Tree{}, err
	}
	repo, err := os.Getwd() // mage runs targets in the repository root
	if err != nil {
		return nil, srctree.Tree{}, err
	}
	tree, err := srctree.Assemble(ctx, newFetcher(), l, srctree.DefaultBuildDir(repo, l), slog.Default())
	return l, tree, err
}

// toolchainInputs loads the lock and returns the checked bin/go of its toolchain.
func toolchainInputs(ctx context.Context, project, version string) (*pins.Lock, string, error) {
	l, err := pins.Load(pinsDir, project, version)
	if err != nil {
		return nil, "", err
	}
	goBin, err := toolchain.Go(ctx, newFetcher(), l.Toolchain)
	return l, goBin, err
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
