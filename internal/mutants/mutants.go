// Package mutants checks that the tests catch the bugs they exist for. It
// applies a fixed list of one-line mutations (deliberate bugs, see List),
// each in turn, to a temporary copy of the repository, runs only the tests
// that should catch it, and reports every mutation the tests let through.
//
// A run is honest only if its parts are: every mutation's old text must
// occur exactly once in its file (so the list cannot rot silently when the
// code changes), every mutated copy must still build (a compile error would
// "catch" anything), and every test selection must pass on the unmutated
// copy first, with at least one test run and none skipped (a test that
// fails anyway, or does not run, proves nothing).
package mutants

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/nokmem/nokmem/internal/testrun"
)

// Mutation is one deliberate bug and the tests that must catch it.
type Mutation struct {
	// Name says what breaks, e.g. "publish-not-atomic".
	Name string
	// File is the file to change, relative to the repository root.
	File string
	// Old is the exact text to replace; it must occur exactly once in File.
	// New replaces it.
	Old, New string
	// Package is the go test package pattern, relative to the root
	// ("./internal/publish"); Run is the -run regex of the tests that must
	// fail.
	Package, Run string
}

// Verdict is what a mutation's test run showed.
type Verdict string

const (
	// Killed: at least one selected test failed on the mutated copy.
	Killed Verdict = "killed"
	// Survived: the mutated copy built and every selected test passed.
	Survived Verdict = "SURVIVED"
)

// Result is the outcome of one mutation.
type Result struct {
	Mutation Mutation
	Verdict  Verdict
	// Failed lists the tests that failed ("package.Test"), or the package
	// when it failed outside a test.
	Failed   []string
	Duration time.Duration
}

// Killers returns the top-level tests (or packages) that failed, without
// the package path and subtests, e.g. "TestRules" or "verify/install (package)".
func (r Result) Killers() []string {
	var names []string
	for _, f := range r.Failed {
		name := f
		for _, kind := range []string{".Test", ".Example", ".Fuzz"} {
			if i := strings.Index(f, kind); i >= 0 {
				name, _, _ = strings.Cut(f[i+1:], "/")
				break
			}
		}
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	return names
}

// Config says where the repository is and how to run the tests.
type Config struct {
	// Repo is the repository root. Its git-tracked files and untracked
	// files that are not ignored are copied.
	Repo string
	// Link names top-level paths (built artifacts such as "_output") that
	// the copy gets as symbolic links to the repository's, when they exist.
	Link []string
	// Go is the go command (default "go"); Env the environment of every
	// go test run (default os.Environ(), so NOKMEM_STRICT is inherited).
	Go  string
	Env []string
	// Timeout is go test's -timeout for each run (default 10m).
	Timeout time.Duration
	// Log receives a line per step; nil discards.
	Log io.Writer
}

// Validate checks the list itself: names unique, every field set, the old
// and new text different, the package a ./ pattern and Run a valid regex.
func Validate(list []Mutation) error {
	var errs []error
	seen := map[string]bool{}
	for i, m := range list {
		where := fmt.Sprintf("mutation %d (%s)", i+1, m.Name)
		switch {
		case m.Name == "" || m.File == "" || m.Old == "" || m.Package == "" || m.Run == "":
			errs = append(errs, fmt.Errorf("%s: name, file, old text, package and -run regex are all required", where))
		case seen[m.Name]:
			errs = append(errs, fmt.Errorf("%s: duplicate name", where))
		case m.Old == m.New:
			errs = append(errs, fmt.Errorf("%s: old and new text are the same", where))
		case !strings.HasPrefix(m.Package, "./"):
			errs = append(errs, fmt.Errorf("%s: package %q must be a ./ path", where, m.Package))
		}
		if _, err := regexp.Compile(m.Run); err != nil {
			errs = append(errs, fmt.Errorf("%s: -run %q: %w", where, m.Run, err))
		}
		seen[m.Name] = true
	}
	return errors.Join(errs...)
}

// Locate checks that every mutation's old text occurs exactly once in its
// file under root.
func Locate(root string, list []Mutation) error {
	var errs []error
	for _, m := range list {
		b, err := os.ReadFile(filepath.Join(root, m.File))
		if err != nil {
			errs = append(errs, fmt.Errorf("mutation %s: %w", m.Name, err))
			continue
		}
		if n := bytes.Count(b, []byte(m.Old)); n != 1 {
			errs = append(errs, fmt.Errorf("mutation %s: %s contains the old text %d times, want exactly once: %q", m.Name, m.File, n, m.Old))
		}
	}
	return errors.Join(errs...)
}

// Run copies the repository, checks the list and the unmutated test
// selections, then applies each mutation in turn (restoring the file
// afterwards) and runs its tests. The error is non-nil when the list or the
// baseline is broken, a mutated copy does not build, or any mutation
// survived; the results cover every mutation that ran.
func Run(ctx context.Context, cfg Config, list []Mutation) ([]Result, error) {
	cfg = cfg.withDefaults()
	if err := Validate(list); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "nokmem-mutants-")
	if err != nil {
		return nil, fmt.Errorf("mutants: %w", err)
	}
	defer os.RemoveAll(dir)
	if err := copyRepo(ctx, cfg.Repo, dir, cfg.Link); err != nil {
		return nil, err
	}
	if err := Locate(dir, list); err != nil {
		return nil, err
	}
	if err := baseline(ctx, cfg, dir, list); err != nil {
		return nil, err
	}
	var results []Result
	var errs []error
	for i, m := range list {
		fmt.Fprintf(cfg.Log, "mutants: [%d/%d] %s: %s\n", i+1, len(list), m.Name, m.File)
		r, err := mutate(ctx, cfg, dir, m)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(cfg.Log, "mutants: [%d/%d] %s: %s by %s (%s)\n", i+1, len(list), m.Name, r.Verdict, strings.Join(r.Killers(), ", "), r.Duration.Round(time.Second/10))
		if r.Verdict == Survived {
			errs = append(errs, fmt.Errorf("mutation %s survived: %s %s -run %q all pass with %q replaced by %q in %s",
				m.Name, m.Package, "tests", m.Run, m.Old, m.New, m.File))
		}
		results = append(results, r)
	}
	return results, errors.Join(errs...)
}

func (c Config) withDefaults() Config {
	if c.Go == "" {
		c.Go = "go"
	}
	if c.Env == nil {
		c.Env = os.Environ()
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Minute
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
	return c
}

// copyRepo copies the files git knows of (tracked, or untracked and not
// ignored) from repo to dir, keeping modes and symbolic links, and links
// the paths in link.
func copyRepo(ctx context.Context, repo, dir string, link []string) error {
	cmd := exec.CommandContext(ctx, "git", "-C", repo, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("list files of %s: git ls-files: %w: %s", repo, err, strings.TrimSpace(stderr.String()))
	}
	for _, name := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		if name == "" {
			continue
		}
		err := copyFile(filepath.Join(repo, name), filepath.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue // tracked but deleted in the work tree
		}
		if err != nil {
			return fmt.Errorf("copy repository: %w", err)
		}
	}
	for _, l := range link {
		src, err := filepath.Abs(filepath.Join(repo, l))
		if err != nil {
			return err
		}
		if _, err := os.Stat(src); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err := os.Symlink(src, filepath.Join(dir, l)); err != nil {
			return fmt.Errorf("copy repository: %w", err)
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	fi, err := os.Lstat(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		return os.Symlink(target, dst)
	case fi.Mode().IsRegular():
		b, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, fi.Mode().Perm())
	default:
		return nil // a submodule or other non-file entry: nothing to copy
	}
}

// selection is one go test invocation: a package and a -run regex.
type selection struct{ pkg, run string }

// baseline runs every distinct test selection on the unmutated copy: each
// must run at least one test, and all must pass without a skip.
func baseline(ctx context.Context, cfg Config, dir string, list []Mutation) error {
	var sels []selection
	for _, m := range list {
		if s := (selection{m.Package, m.Run}); !slices.Contains(sels, s) {
			sels = append(sels, s)
		}
	}
	var errs []error
	for i, s := range sels {
		start := time.Now()
		o, err := goTest(ctx, cfg, dir, s)
		if err != nil {
			return err
		}
		fmt.Fprintf(cfg.Log, "mutants: baseline [%d/%d] %s -run %s: %d passed, %d failed, %d skipped (%s)\n",
			i+1, len(sels), s.pkg, s.run, o.passed, len(o.failed), len(o.skipped), time.Since(start).Round(time.Second/10))
		switch {
		case o.buildFailed:
			errs = append(errs, fmt.Errorf("baseline %s: does not build unmutated:\n%s", s.pkg, o.output))
		case len(o.failed) > 0:
			errs = append(errs, fmt.Errorf("baseline %s -run %q: fails unmutated: %v\n%s", s.pkg, s.run, o.failed, o.output))
		case len(o.skipped) > 0:
			errs = append(errs, fmt.Errorf("baseline %s -run %q: skipped %v: a skipped test catches nothing", s.pkg, s.run, o.skipped))
		case o.passed == 0:
			errs = append(errs, fmt.Errorf("baseline %s -run %q: runs no test", s.pkg, s.run))
		}
	}
	return errors.Join(errs...)
}

// mutate applies m to the copy in dir, runs its tests and puts the file back.
func mutate(ctx context.Context, cfg Config, dir string, m Mutation) (Result, error) {
	path := filepath.Join(dir, m.File)
	orig, err := os.ReadFile(path)
	if err != nil {
		return Result{}, fmt.Errorf("mutation %s: %w", m.Name, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return Result{}, fmt.Errorf("mutation %s: %w", m.Name, err)
	}
	mutated := bytes.Replace(orig, []byte(m.Old), []byte(m.New), 1)
	if err := os.WriteFile(path, mutated, fi.Mode().Perm()); err != nil {
		return Result{}, fmt.Errorf("mutation %s: %w", m.Name, err)
	}
	defer os.WriteFile(path, orig, fi.Mode().Perm())
	start := time.Now()
	o, err := goTest(ctx, cfg, dir, selection{m.Package, m.Run})
	if err != nil {
		return Result{}, fmt.Errorf("mutation %s: %w", m.Name, err)
	}
	r := Result{Mutation: m, Failed: o.failed, Duration: time.Since(start)}
	switch {
	case o.buildFailed:
		return r, fmt.Errorf("mutation %s: the mutated copy does not build, so it tests nothing; fix the new text:\n%s", m.Name, o.output)
	case len(o.failed) > 0:
		r.Verdict = Killed
	default:
		r.Verdict = Survived
	}
	return r, nil
}

// outcome is what one go test run showed.
type outcome struct {
	passed      int
	failed      []string // "package.Test", or "package (package)" for a failure outside a test
	skipped     []string
	buildFailed bool
	output      string // build output and the output of failed runs, for messages
}

// goTest runs `go test -json -count=1 -run RUN PKG` in dir. A non-zero exit
// is not an error here: the outcome says what failed.
func goTest(ctx context.Context, cfg Config, dir string, s selection) (outcome, error) {
	cmd := exec.CommandContext(ctx, cfg.Go, "test", "-json", "-count=1", "-timeout="+cfg.Timeout.String(), "-run", s.run, s.pkg)
	cmd.Dir = dir
	cmd.Env = cfg.Env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return outcome{}, err
	}
	if err := cmd.Start(); err != nil {
		return outcome{}, fmt.Errorf("go test %s: %w", s.pkg, err)
	}
	var o outcome
	var out strings.Builder
	testFailed := map[string]bool{}
	scanErr := testrun.Scan(pipe, func(e testrun.Event) {
		switch e.Action {
		case "", "output", "build-output":
			out.WriteString(e.Output)
		case "build-fail":
			o.buildFailed = true
		case "pass":
			if e.Test != "" {
				o.passed++
			}
		case "skip":
			if e.Test != "" {
				o.skipped = append(o.skipped, e.Package+"."+e.Test)
			}
		case "fail":
			switch {
			case e.Test != "":
				testFailed[e.Package] = true
				o.failed = append(o.failed, e.Package+"."+e.Test)
			case !testFailed[e.Package]:
				o.failed = append(o.failed, e.Package+" (package)")
			}
		}
	})
	waitErr := cmd.Wait()
	if scanErr != nil {
		return o, fmt.Errorf("go test %s: read output: %w", s.pkg, scanErr)
	}
	if ctx.Err() != nil {
		return o, ctx.Err()
	}
	o.output = out.String() + stderr.String()
	if strings.Contains(o.output, "[setup failed]") || strings.Contains(o.output, "[build failed]") {
		o.buildFailed = true
	}
	if o.buildFailed {
		o.failed = nil
	}
	var exit *exec.ExitError
	if waitErr != nil && !errors.As(waitErr, &exit) {
		return o, fmt.Errorf("go test %s: %w", s.pkg, waitErr)
	}
	if waitErr != nil && len(o.failed) == 0 && !o.buildFailed {
		o.failed = []string{s.pkg + " (go test exited " + exit.String() + ")"}
	}
	return o, nil
}
