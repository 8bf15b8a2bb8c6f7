//go:build mage

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/magefile/mage/mg"

	"github.com/nokmem/nokmem/internal/elfcheck"
	"github.com/nokmem/nokmem/internal/publish"
)

// Verify builds the node program.
type Verify mg.Namespace

// verifyOutput is where the node program is published.
var verifyOutput = filepath.Join("_output", "verify")

// Build builds the verify node program as a static binary (CGO_ENABLED=0,
// -trimpath, empty build id, so rebuilds are byte-identical), checks that it
// runs on CentOS 7 (ELF check) and publishes it atomically into
// _output/verify with SHA256SUMS and SHA512SUMS.
func (Verify) Build(ctx context.Context) error {
	if err := os.MkdirAll("_build", 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("_build", "verify-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "verify")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-ldflags=-buildid=", "-o", bin, "./verify")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build verify: %w", err)
	}
	if _, err := elfcheck.Check(bin, "2.17"); err != nil {
		return err
	}
	version, err := exec.CommandContext(ctx, "go", "version").Output()
	if err != nil {
		return fmt.Errorf("go version: %w", err)
	}
	stamp := &publish.Stamp{}
	stamp.Add("go version", version)
	for _, f := range []string{"go.mod", "go.sum"} {
		if err := stamp.AddFile(f, f); err != nil {
			return err
		}
	}
	sha, err := publish.Publish(verifyOutput, []string{bin}, stamp)
	if err != nil {
		return err
	}
	fmt.Printf("verify: published %s (sha256 %s, %s)\n", verifyOutput, sha["verify"], strings.TrimSpace(string(version)))
	return nil
}
