// Package modfetch downloads the modules a lock file names through the Go
// module proxy and checks each zip's h1 hash against the lock.
//
// Downloads run `go mod download -json module@version...` (a few modules per
// command, several commands in parallel), so they honour everything the go
// command does: GOPROXY (a private or file:// mirror in an air-gapped CI),
// GOFLAGS, GOPRIVATE, GONOPROXY, GONOSUMDB, GOSUMDB, GOINSECURE and
// GOMODCACHE. The h1 check is done here, on the zip bytes in
// the module cache, whether or not the zip was already cached: a zip whose
// hash differs from the lock stops the run with an error naming the module.
//
// Offline builds: with GOPROXY=off, modules already in the module cache are
// fetched from it. The go command refuses GOPROXY=off as soon as it extracts
// a cached zip again (it then wants the checksum database, and for
// golang.org/toolchain it wants it even with GOSUMDB=off), so an offline run
// serves the module cache's own download folder as its only proxy
// (GOPROXY=file://$GOMODCACHE/cache/download, GOSUMDB=off): still no
// network, and a module missing from the cache fails naming it. The lock's
// h1, checked here on every zip, is the pin the checksum database would have
// confirmed.
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
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"golang.org/x/mod/sumdb/dirhash"

	"github.com/nokmem/nokmem/internal/pins"
)

// ErrHashMismatch is returned when a zip's h1 differs from the lock.
var ErrHashMismatch = errors.New("h1 hash mismatch")

// ErrMissingHash is returned when the lock gives no h1 for a module.
var ErrMissingHash = errors.New("no h1 hash in the lock")

// DefaultJobs is the number of go commands run at once when Fetcher.Jobs is 0.
const DefaultJobs = 4

// Fetcher downloads modules. The zero value runs "go" from PATH with the
// process environment, DefaultJobs go commands at a time, and no progress.
type Fetcher struct {
	// Go is the go command to run; "go" when empty.
	Go string
	// Env is added to the process environment (later entries win), e.g.
	// GOPROXY=file:///mirror or GOMODCACHE=/ci/cache/mod.
	Env []string
	// Jobs bounds the go commands running at once, each downloading up to
	// batchSize modules; DefaultJobs when 0.
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

func (d download) id() string { return d.Path + "@" + d.Version }

// listedModule is what `go list -m -json` prints for a module.
type listedModule struct {
	Path, Version, GoMod string
	Error                *struct{ Err string }
}

func (m listedModule) id() string { return m.Path + "@" + m.Version }

// Fetch downloads every module and checks its zip against the lock's h1.
// Results come back in the order of mods. Every failing module is reported
// (joined), each error naming its module; nothing is returned on failure.
func (f *Fetcher) Fetch(ctx context.Context, mods []pins.Module) ([]Result, error) {
	dir, env, err := f.scratch(ctx, mods, "")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)

	jobs := f.Jobs
	if jobs <= 0 {
		jobs = DefaultJobs
	}
	results := make([]Result, len(mods))
	errs := make([]error, len(mods))
	var mu sync.Mutex
	done := 0
	var wg sync.WaitGroup
	slots := make(chan struct{}, jobs)
	for start := 0; start < len(mods); start += batchSize {
		end := min(start+batchSize, len(mods))
		wg.Go(func() {
			slots <- struct{}{}
			f.fetchBatch(ctx, dir, env, mods[start:end], results[start:end], errs[start:end])
			<-slots
			mu.Lock()
			defer mu.Unlock()
			for i, m := range mods[start:end] {
				done++
				if f.Progress != nil {
					status := "ok"
					if errs[start+i] != nil {
						status = "FAILED"
					}
					fmt.Fprintf(f.Progress, "[%d/%d] %s %s\n", done, len(mods), m, status)
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return results, nil
}

// scratch checks that every module has an h1 (what, e.g. " go.mod",
// follows the module in the error) and returns an empty directory outside
// any module, so that no go.mod or go.work around the caller matters, and
// the go command's environment for it. The caller removes dir.
func (f *Fetcher) scratch(ctx context.Context, mods []pins.Module, what string) (dir string, env []string, err error) {
	var errs []error
	for _, m := range mods {
		if !strings.HasPrefix(m.H1, "h1:") {
			errs = append(errs, fmt.Errorf("%s%s: %w", m, what, ErrMissingHash))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return "", nil, err
	}
	if dir, err = os.MkdirTemp("", "nokmem-modfetch-"); err != nil {
		return "", nil, err
	}
	if env, err = f.env(ctx, dir); err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	return dir, env, nil
}

// batchSize is how many modules one go command downloads: fewer go
// processes (a warm run is mostly their start-up), still frequent progress.
const batchSize = 8

// goCmd is the go command to run.
func (f *Fetcher) goCmd() string {
	if f.Go == "" {
		return "go"
	}
	return f.Go
}

// env is the go command's environment: the process's plus f.Env, and for
// an offline run (GOPROXY=off) the module cache served as a file:// proxy.
func (f *Fetcher) env(ctx context.Context, dir string) ([]string, error) {
	env := append(os.Environ(), f.Env...)
	cmd := exec.CommandContext(ctx, f.goCmd(), "env", "GOPROXY", "GOMODCACHE")
	cmd.Dir, cmd.Env = dir, env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go env GOPROXY GOMODCACHE: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	proxy, modcache, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if proxy != "off" {
		return env, nil
	}
	if modcache == "" {
		return nil, errors.New("GOPROXY=off but go env GOMODCACHE is empty: no module cache to build from")
	}
	return append(env, "GOPROXY=file://"+filepath.ToSlash(filepath.Join(modcache, "cache", "download")), "GOSUMDB=off"), nil
}

// fetchBatch downloads mods with one go command and fills results and errs
// (same length as mods) for each module.
func (f *Fetcher) fetchBatch(ctx context.Context, dir string, env []string, mods []pins.Module, results []Result, errs []error) {
	// One JSON object per module; with an error, its Error field says why.
	got, runErr, stderr := goJSON[download](ctx, f, dir, env, []string{"mod", "download", "-json"}, mods)
	for i, m := range mods {
		d, ok := got[m.String()]
		switch {
		case ok && d.Error != "":
			errs[i] = fmt.Errorf("download %s: %s", m, d.Error)
		case ok && d.Zip != "":
			if errs[i] = CheckZip(m, d.Zip); errs[i] == nil {
				results[i] = Result{Module: m, Zip: d.Zip, Dir: d.Dir}
			}
		default:
			errs[i] = fmt.Errorf("download %s: %w: %s", m, errors.Join(runErr, errors.New("no result")), stderr)
		}
	}
}

// goJSON runs the go command with args followed by every module of mods,
// in dir with env, and decodes its stream of JSON objects by path@version.
// runErr joins the command's failure and a decoding error; stderr is its
// trimmed standard error, for the messages.
func goJSON[T interface{ id() string }](ctx context.Context, f *Fetcher, dir string, env, args []string, mods []pins.Module) (got map[string]T, runErr error, stderr string) {
	args = slices.Clone(args)
	for _, m := range mods {
		args = append(args, m.String())
	}
	cmd := exec.CommandContext(ctx, f.goCmd(), args...)
	cmd.Dir, cmd.Env = dir, env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	runErr = cmd.Run()
	got = map[string]T{}
	dec := json.NewDecoder(&out)
	for {
		var d T
		if err := dec.Decode(&d); err == io.EOF {
			break
		} else if err != nil {
			runErr = errors.Join(runErr, fmt.Errorf("decode go %s output: %w", strings.Join(args[:2], " "), err))
			break
		}
		got[d.id()] = d
	}
	return got, runErr, strings.TrimSpace(errOut.String())
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

// ErrGoModMismatch is returned when a go.mod file's h1 differs from the lock.
var ErrGoModMismatch = errors.New("go.mod h1 hash mismatch")

// ModResult is a downloaded and verified go.mod file.
type ModResult struct {
	pins.Module // H1 is the go.mod h1
	// GoMod is the .mod file in the module cache's download folder.
	GoMod string
}

// FetchGoMods downloads the go.mod file of every module (mods' H1 being
// the go.mod h1, as go.sum's "/go.mod" lines) with `go list -m -json`,
// which fetches .info and .mod but no zip, and checks each against its
// h1. Offline (GOPROXY=off) it reads the module cache as Fetch does.
func (f *Fetcher) FetchGoMods(ctx context.Context, mods []pins.Module) ([]ModResult, error) {
	dir, env, err := f.scratch(ctx, mods, " go.mod")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	// Outside a module -mod means nothing, and a -mod=mod from the
	// caller's GOFLAGS would make the go command refuse to run.
	env = append(env, "GOFLAGS=")
	results := make([]ModResult, len(mods))
	errs := make([]error, len(mods))
	const batch = 64 // .mod files are small: fewer go commands
	jobs := f.Jobs
	if jobs <= 0 {
		jobs = DefaultJobs
	}
	var wg sync.WaitGroup
	slots := make(chan struct{}, jobs)
	for start := 0; start < len(mods); start += batch {
		end := min(start+batch, len(mods))
		wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			f.fetchGoModBatch(ctx, dir, env, mods[start:end], results[start:end], errs[start:end])
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if f.Progress != nil {
		fmt.Fprintf(f.Progress, "%d go.mod files verified\n", len(mods))
	}
	return results, nil
}

func (f *Fetcher) fetchGoModBatch(ctx context.Context, dir string, env []string, mods []pins.Module, results []ModResult, errs []error) {
	got, runErr, stderr := goJSON[listedModule](ctx, f, dir, env, []string{"list", "-m", "-json"}, mods)
	for i, m := range mods {
		d, ok := got[m.String()]
		if !ok || d.Error != nil || d.GoMod == "" {
			errs[i] = fmt.Errorf("download %s go.mod: %w: %s", m, errors.Join(runErr, errors.New("no result")), stderr)
			continue
		}
		if errs[i] = CheckGoMod(m, d.GoMod); errs[i] == nil {
			results[i] = ModResult{Module: m, GoMod: d.GoMod}
		}
	}
}

// CheckGoMod hashes a go.mod file as go.sum's "/go.mod" line does and
// compares it with m.H1.
func CheckGoMod(m pins.Module, file string) error {
	got, err := dirhash.Hash1([]string{"go.mod"}, func(string) (io.ReadCloser, error) { return os.Open(file) })
	if err != nil {
		return fmt.Errorf("%s: hash %s: %w", m, file, err)
	}
	if got != m.H1 {
		return fmt.Errorf("%s: %w: %s has %s, the lock says %s", m, ErrGoModMismatch, file, got, m.H1)
	}
	return nil
}

// ModCache returns the module cache the fetcher's go commands use (go env GOMODCACHE).
func (f *Fetcher) ModCache(ctx context.Context) (string, error) {
	cmd := exec.CommandContext(ctx, f.goCmd(), "env", "GOMODCACHE")
	cmd.Env = append(os.Environ(), f.Env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMODCACHE: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return "", errors.New("go env GOMODCACHE is empty")
	}
	return dir, nil
}
