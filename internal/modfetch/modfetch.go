// Package modfetch downloads the modules a lock file names through the Go
// module proxy and checks each zip's h1 hash against the lock.
//
// Downloads run `go mod download -json module@version`, so they honour
// everything the go command does: GOPROXY (a private or file:// mirror in an
// air-gapped CI), GOFLAGS, GOPRIVATE, GONOPROXY, GONOSUMDB, GOSUMDB,
// GOINSECURE and GOMODCACHE. The h1 check is done here, on the zip bytes in
// the module cache, whether or not the zip was already cached: a zip whose
// hash differs from the lock stops the run with an error naming the module.
//
// Use:
//
//	f := modfetch.Fetcher{Progress: os.Stderr}
//	got, err := f.Fetch(ctx, lock.Modules())
package modfetch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"

	"golang.org/x/mod/sumdb/dirhash"
	"golang.org/x/sync/errgroup"

	"github.com/nokmem/nokmem/internal/pins"
)

// ErrHashMismatch is returned when a zip's h1 differs from the lock.
var ErrHashMismatch = errors.New("h1 hash mismatch")

// ErrMissingHash is returned when the lock gives no h1 for a module.
var ErrMissingHash = errors.New("no h1 hash in the lock")

// DefaultJobs is the number of parallel downloads when Fetcher.Jobs is 0.
const DefaultJobs = 8

// Fetcher downloads modules. The zero value runs "go" from PATH with the
// process environment, DefaultJobs downloads at a time, and no progress.
type Fetcher struct {
	// Go is the go command to run; "go" when empty.
	Go string
	// Env is added to the process environment (later entries win), e.g.
	// GOPROXY=file:///mirror or GOMODCACHE=/ci/cache/mod.
	Env []string
	// Jobs bounds the parallel downloads; DefaultJobs when 0.
	Jobs int
	// Progress receives one human line per module; nothing when nil.
	Progress io.Writer
}

// Result is a downloaded and verified module.
type Result struct {
	pins.Module
	// Zip is the module zip in the module cache; its h1 equals Module.H1.
	Zip string
	// Dir is the go command's extraction of Zip in the module cache (read-only).
	Dir string
}

// download is the part of `go mod download -json` output used here.
type download struct {
	Path, Version, Zip, Dir, Error string
}

// Fetch downloads every module and checks its zip against the lock's h1.
// Results come back in the order of mods. Every failing module is reported
// (joined), each error naming its module; nothing is returned on failure.
func (f *Fetcher) Fetch(ctx context.Context, mods []pins.Module) ([]Result, error) {
	var errs []error
	for _, m := range mods {
		if !strings.HasPrefix(m.H1, "h1:") {
			errs = append(errs, fmt.Errorf("%s: %w", m, ErrMissingHash))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	// Run outside any module so that no go.mod or go.work around the caller matters.
	dir, err := os.MkdirTemp("", "nokmem-modfetch-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)

	jobs := f.Jobs
	if jobs <= 0 {
		jobs = DefaultJobs
	}
	results := make([]Result, len(mods))
	errs = make([]error, len(mods))
	var mu sync.Mutex
	done := 0
	var g errgroup.Group
	g.SetLimit(jobs)
	for i, m := range mods {
		g.Go(func() error {
			r, err := f.fetchOne(ctx, dir, m)
			results[i], errs[i] = r, err
			mu.Lock()
			defer mu.Unlock()
			done++
			if f.Progress != nil {
				status := "ok"
				if err != nil {
					status = "FAILED"
				}
				fmt.Fprintf(f.Progress, "[%d/%d] %s %s\n", done, len(mods), m, status)
			}
			return nil
		})
	}
	g.Wait() // the goroutines report through errs
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return results, nil
}

func (f *Fetcher) fetchOne(ctx context.Context, dir string, m pins.Module) (Result, error) {
	goCmd := f.Go
	if goCmd == "" {
		goCmd = "go"
	}
	cmd := exec.CommandContext(ctx, goCmd, "mod", "download", "-json", m.String())
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), f.Env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var d download
	if err := json.Unmarshal(stdout.Bytes(), &d); err != nil {
		return Result{}, fmt.Errorf("download %s: %v: %s", m, errors.Join(runErr, err), strings.TrimSpace(stderr.String()))
	}
	if d.Error != "" {
		return Result{}, fmt.Errorf("download %s: %s", m, d.Error)
	}
	if runErr != nil {
		return Result{}, fmt.Errorf("download %s: %w: %s", m, runErr, strings.TrimSpace(stderr.String()))
	}
	if err := CheckZip(m, d.Zip); err != nil {
		return Result{}, err
	}
	return Result{Module: m, Zip: d.Zip, Dir: d.Dir}, nil
}

// CheckZip hashes the zip file and compares it with the module's h1.
func CheckZip(m pins.Module, zip string) error {
	if !strings.HasPrefix(m.H1, "h1:") {
		return fmt.Errorf("%s: %w", m, ErrMissingHash)
	}
	got, err := dirhash.HashZip(zip, dirhash.Hash1)
	if err != nil {
		return fmt.Errorf("%s: hash %s: %w", m, zip, err)
	}
	if got != m.H1 {
		return fmt.Errorf("%s: %w: zip %s has %s, the lock says %s", m, ErrHashMismatch, zip, got, m.H1)
	}
	return nil
}
