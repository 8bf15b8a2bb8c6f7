package gobuild

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"sync"

	"github.com/nokmem/nokmem/internal/pins"
)

// Count is what one go build will do before it runs.
type Count struct {
	// Packages are the import paths the build needs (`go list -deps`, with
	// the build's tags and flags), without "unsafe", which is never compiled.
	Packages []string
	// Compile is how many of them the build compiles: `go build -n` lists a
	// compile command only for a package the build cache does not hold.
	Compile int
}

// Cached is how many packages come from the build cache.
func (c Count) Cached() int { return max(0, len(c.Packages)-c.Compile) }

// CountPackages asks the toolchain what building pkg as s describes will
// do: every package it needs and how many of them are not in the build
// cache. Neither command builds anything.
func CountPackages(ctx context.Context, s Spec, pkg pins.BuildPackage) (Count, error) {
	args := s.Args(pkg)
	target := args[len(args)-1]
	flags := args[1 : len(args)-3] // between "build" and "-o out target"
	list, _, err := s.run(ctx, append(append([]string{"list", "-deps"}, listFlags(flags)...), target))
	if err != nil {
		return Count{}, err
	}
	var c Count
	for _, p := range strings.Fields(string(list)) {
		if p != "unsafe" {
			c.Packages = append(c.Packages, p)
		}
	}
	_, dry, err := s.run(ctx, append([]string{"build", "-n"}, args[1:]...)) // -n prints on stderr
	if err != nil {
		return Count{}, err
	}
	sc := bufio.NewScanner(bytes.NewReader(dry))
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for sc.Scan() {
		// ".../pkg/tool/linux_amd64/compile -o $WORK/b001/_pkg_.a ... -p <import path> ..."
		if strings.Contains(sc.Text(), "/compile -o ") {
			c.Compile++
		}
	}
	return c, sc.Err()
}

// listFlags keeps the build flags `go list` shares with `go build`
// (-trimpath and -tags change which packages and action IDs are used;
// -buildvcs and -ldflags only matter for the binary).
func listFlags(flags []string) []string {
	var out []string
	for i := 0; i < len(flags); i++ {
		switch flags[i] {
		case "-trimpath":
			out = append(out, flags[i])
		case "-tags":
			out = append(out, flags[i], flags[i+1])
			i++
		case "-ldflags":
			i++
		}
	}
	return out
}

// run runs the toolchain with args in the project's directory of the tree
// and returns its standard output and standard error.
func (s Spec) run(ctx context.Context, args []string) (stdout, stderr []byte, err error) {
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, s.Go, args...)
	cmd.Dir = s.dir()
	cmd.Env = Env(s.GOPATH, s.CGO, s.Env...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, nil, fmt.Errorf("go %s: %w: %s", strings.Join(args[:2], " "), err, strings.TrimSpace(errb.String()))
	}
	return out.Bytes(), errb.Bytes(), nil
}

// Progress counts the packages of a running build: Build sets the count
// before it starts the go command (with -v, which only adds logging: the
// command prints each package's import path as it compiles it) and feeds
// the command's output through Writer. Safe for concurrent use.
type Progress struct {
	mu       sync.Mutex
	pkg      string
	count    Count
	want     map[string]bool // packages the build compiles or takes from the cache
	compiled map[string]bool
	started  bool
}

// Snapshot is the state of a running build.
type Snapshot struct {
	// Started is false until the count is known.
	Started bool
	// Package is the binary's package being built, e.g. cmd/kubelet.
	Package string
	// Done counts the packages ready: from the cache or compiled so far.
	Done, Total, Cached int
}

func (s Snapshot) String() string {
	if !s.Started {
		return "counting packages"
	}
	return fmt.Sprintf("%d/%d packages (%d from cache)", s.Done, s.Total, s.Cached)
}

// Start begins counting the build of pkg (Build calls it).
func (p *Progress) Start(pkg string, c Count) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pkg, p.count, p.started = pkg, c, true
	p.want = make(map[string]bool, len(c.Packages))
	for _, ip := range c.Packages {
		p.want[ip] = true
	}
	p.compiled = map[string]bool{}
}

// Snapshot returns the current state.
func (p *Progress) Snapshot() Snapshot {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.started {
		return Snapshot{}
	}
	total, cached := len(p.count.Packages), p.count.Cached()
	return Snapshot{Started: true, Package: p.pkg, Total: total, Cached: cached, Done: min(total, cached+len(p.compiled))}
}

// Writer returns the writer for the go command's output: a line that names
// a package of the build counts it as compiled and is dropped; every other
// line (compiler and linker messages) goes on to out.
func (p *Progress) Writer(out io.Writer) *ProgressWriter { return &ProgressWriter{p: p, out: out} }

// ProgressWriter is Progress.Writer's result.
type ProgressWriter struct {
	p       *Progress
	out     io.Writer
	pending []byte
}

// Write implements io.Writer. Lines may arrive in pieces; a piece without
// a newline waits for the rest of its line (Flush sends it on).
func (w *ProgressWriter) Write(b []byte) (int, error) {
	w.pending = append(w.pending, b...)
	for {
		i := bytes.IndexByte(w.pending, '\n')
		if i < 0 {
			return len(b), nil
		}
		line := w.pending[:i+1]
		if err := w.line(line); err != nil {
			return len(b), err
		}
		w.pending = slices.Delete(w.pending, 0, i+1)
	}
}

func (w *ProgressWriter) line(line []byte) error {
	ip := string(bytes.TrimSpace(line))
	w.p.mu.Lock()
	pkgLine := w.p.want[ip]
	if pkgLine {
		w.p.compiled[ip] = true
	}
	w.p.mu.Unlock()
	if pkgLine {
		return nil
	}
	_, err := w.out.Write(line)
	return err
}

// Flush sends on an unterminated last line.
func (w *ProgressWriter) Flush() error {
	if len(w.pending) == 0 {
		return nil
	}
	err := w.line(w.pending)
	w.pending = nil
	return err
}
