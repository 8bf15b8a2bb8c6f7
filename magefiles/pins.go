//go:build mage

package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/magefile/mage/mg"

	"github.com/nokmem/nokmem/internal/modfetch"
	"github.com/nokmem/nokmem/internal/pins"
)

// Pins checks the lock files under vendor-pins/.
type Pins mg.Namespace

// pinsDir is the lock file folder, relative to the repository root (mage's working directory).
const pinsDir = "vendor-pins"

// Verify downloads every module of vendor-pins/<project>/<version>.yaml
// through the Go module proxy (GOPROXY etc. apply) and checks each zip's h1.
// A warm module cache is rehashed, not trusted; GOMODCACHE=$(mktemp -d)
// forces a real re-download.
func (Pins) Verify(ctx context.Context, project, version string) error {
	l, err := pins.Load(pinsDir, project, version)
	if err != nil {
		return err
	}
	start := time.Now()
	got, err := newFetcher().Fetch(ctx, l.Modules())
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "pins %s %s: %d modules verified against their h1 in %s (%d vendor roots, %d excluded)\n",
		project, version, len(got), time.Since(start).Round(time.Millisecond), len(l.Vendor), len(l.Excluded))
	return nil
}

// newFetcher is the module fetcher every input target uses: the go command
// from PATH, the process environment, progress on stderr.
func newFetcher() *modfetch.Fetcher {
	return &modfetch.Fetcher{Progress: os.Stderr}
}
