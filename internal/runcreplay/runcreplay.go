// Package runcreplay replays, against a runc binary and with real
// containers, the exact argument sets that engines built on
// github.com/containerd/go-runc (containerd 1.0-1.4, and through them
// Docker CE 17.11-19.03) pass to runc, and checks each call's exit code and
// effect (the container is created, runs, holds the exec'd process, has the
// updated limit, is paused, stopped, gone...). A flag that a newer runc
// dropped or renamed makes its step fail, naming the go-runc version, the
// step and runc's own message.
//
// The sets are data (testdata/gorunc-argsets.yaml), read from each go-runc
// version's runc.go and from where the engines pin it; docs/engines.md says
// how.
package runcreplay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/semver"
	"sigs.k8s.io/yaml"

	"github.com/nokmem/nokmem/internal/runcproof"
)

// File is the argument-set file.
type File struct {
	// Engines says which engine versions vendor which go-runc commit.
	Engines []Engine `json:"engines"`
	// GoRunc holds one argument set per go-runc commit.
	GoRunc []ArgSet `json:"goRunc"`
}

// Engine is one range of engine versions and the go-runc they vendor.
type Engine struct {
	Engine     string `json:"engine"`
	Versions   string `json:"versions"`
	Containerd string `json:"containerd,omitempty"`
	GoRunc     string `json:"goRunc"`
	ReadFrom   string `json:"readFrom"`
}

// ArgSet is what one go-runc version passes to runc, as steps replayed in order.
type ArgSet struct {
	Commit  string `json:"commit"`
	Version string `json:"version"`
	H1      string `json:"h1"`
	Steps   []Step `json:"steps"`
}

// Step is one runc call.
type Step struct {
	Name string `json:"name"`
	// Call is the go-runc call (and options) that builds Args.
	Call string `json:"call"`
	// Container names the container the placeholders refer to (c1, c2...).
	Container string   `json:"container,omitempty"`
	Args      []string `json:"args"`
	// Stdin is written to runc's standard input (update --resources -).
	Stdin string `json:"stdin,omitempty"`
	// ExtraFiles is how many open files runc inherits from fd 3 on (--preserve-fds).
	ExtraFiles int `json:"extraFiles,omitempty"`
	// Expect names the check run after the call (Expectations).
	Expect string `json:"expect"`
}

// Expectations are the checks a step can ask for.
var Expectations = []string{
	"version", "created", "created-console", "state-created", "state-running", "running", "pids", "table",
	"exec", "exec-console", "updated", "stats", "stats-stream", "paused", "listed", "flags-accepted",
	"stopped", "deleted", "logged-error",
}

// placeholder matches {name} in args.
var placeholder = regexp.MustCompile(`\{([a-z]+)\}`)

// placeholders are the names Expand knows.
var placeholders = []string{"root", "log", "bundle", "pidfile", "execpidfile", "process", "id", "console", "image", "work", "parent", "criu"}

// Load reads and checks an argument-set file: every engine names a set,
// every set has a 40-hex commit and a pseudo-version ending in its first
// 12 hex digits, every step a known expectation and known placeholders.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f File
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var errs []error
	commits := map[string]bool{}
	for _, s := range f.GoRunc {
		commits[s.Commit] = true
		if !regexp.MustCompile(`^[0-9a-f]{40}$`).MatchString(s.Commit) || !strings.HasSuffix(s.Version, "-"+s.Commit[:min(12, len(s.Commit))]) {
			errs = append(errs, fmt.Errorf("go-runc %s: want a 40-hex commit and its pseudo-version, have version %q", s.Commit, s.Version))
		}
		for _, st := range s.Steps {
			if !slices.Contains(Expectations, st.Expect) {
				errs = append(errs, fmt.Errorf("go-runc %s step %s: unknown expect %q", s.Commit, st.Name, st.Expect))
			}
			for _, a := range st.Args {
				for _, m := range placeholder.FindAllStringSubmatch(a, -1) {
					if !slices.Contains(placeholders, m[1]) {
						errs = append(errs, fmt.Errorf("go-runc %s step %s: unknown placeholder %s", s.Commit, st.Name, m[0]))
					}
					if m[1] != "root" && m[1] != "log" && m[1] != "criu" && st.Container == "" {
						errs = append(errs, fmt.Errorf("go-runc %s step %s: %s needs a container", s.Commit, st.Name, m[0]))
					}
				}
			}
		}
	}
	for _, e := range f.Engines {
		if !commits[e.GoRunc] {
			errs = append(errs, fmt.Errorf("engine %s %s: go-runc %s has no argument set", e.Engine, e.Versions, e.GoRunc))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &f, nil
}

// Env is where a replay runs.
type Env struct {
	// Runc is the binary under test.
	Runc string
	// Busybox is the static busybox the containers' rootfs is made of.
	Busybox string
	// Dir is a scratch directory for bundles, runc's root and logs (short:
	// console socket paths must fit in 108 bytes).
	Dir string
	// CgroupParent is where containers' cgroups go ("/nokmem-test-…"); the
	// caller creates and removes it.
	CgroupParent string
	// Criu is the path given to --criu.
	Criu string
	// Unsupported names the steps the runc under test is known to refuse,
	// with the reason (see Unsupported): such a step must fail with runc's
	// unknown-flag error, and passes the replay only then.
	Unsupported map[string]string
}

// Unsupported returns the steps of the pinned sets that runc version v
// (vX.Y.Z, build metadata allowed) refuses by design, each with the
// reason and what it means for an engine; nil when there are none.
func Unsupported(v string) map[string]string {
	v = semver.Canonical(v)
	if v == "" || semver.Compare(v, "v1.4.0-0") < 0 {
		return nil
	}
	return map[string]string{
		"criu-path": "runc 1.4 removed the deprecated --criu flag (opencontainers/runc #4722, CHANGELOG 1.4.0); " +
			"go-runc passes it only when a client sets CriuPath in the runc runtime options " +
			"(containerd runtime/v1/linux/bundle.go, runtime/v2/runc/container.go), which Docker CE never does: " +
			"leave CriuPath unset with this runc",
	}
}

// ErrUnsupportedAccepted is returned when runc accepted a step that
// Unsupported says it refuses: the list is out of date.
var ErrUnsupportedAccepted = errors.New("runc accepted a step recorded as unsupported")

// Result is one replayed step.
type Result struct {
	Step     Step
	Args     []string // as run
	Duration time.Duration
	// Unsupported is the reason when runc refused the step as
	// Env.Unsupported expects.
	Unsupported string
}

// memoryLimit is each container's memory limit; updateLimit what the
// update step sets (the stdin of the data file).
const (
	memoryLimit = 64 << 20
	updateLimit = 128 << 20
)

// loop is each container's init: it ends on SIGTERM.
var loop = []string{"/bin/sh", "-c", `trap "exit 0" TERM; while :; do sleep 1; done`}

// Replay runs set's steps in order against env.Runc and returns the steps
// run, stopping at the first failure, whose error names the go-runc
// version, the step, the command line and runc's output. Every container
// it created is deleted again (runc delete --force) before it returns.
func Replay(ctx context.Context, env Env, set ArgSet) ([]Result, error) {
	r := &replay{env: env, set: set, ctrs: map[string]*ctr{}}
	defer r.cleanup()
	var results []Result
	for _, st := range set.Steps {
		start := time.Now()
		args, err := r.run(ctx, st)
		res := Result{Step: st, Args: args, Duration: time.Since(start)}
		if why, ok := env.Unsupported[st.Name]; ok {
			switch {
			case err == nil:
				err = fmt.Errorf("%w (%s)", ErrUnsupportedAccepted, why)
			case strings.Contains(err.Error(), "flag provided but not defined"):
				err, res.Unsupported = nil, why
			}
		}
		results = append(results, res)
		if err != nil {
			return results, fmt.Errorf("go-runc %s (%s) step %q (%s): %s %s: %w", set.Commit[:12], set.Version, st.Name, st.Call, env.Runc, strings.Join(args, " "), err)
		}
	}
	return results, nil
}

// replay is the state of one Replay.
type replay struct {
	env  Env
	set  ArgSet
	ctrs map[string]*ctr
	seq  int
}

// ctr is one container of the replay.
type ctr struct {
	name, id, dir string
	console       *console
	terminal      bool
	prepared      bool
	// live is set once a step created the container, cleared when one deleted it.
	live bool
}

func (r *replay) root() string    { return filepath.Join(r.env.Dir, "root") }
func (r *replay) logPath() string { return filepath.Join(r.env.Dir, "log.json") }

// container returns (and on first use lays out the bundle of) the named container.
func (r *replay) container(ctx context.Context, name string) (*ctr, error) {
	c := r.ctrs[name]
	if c == nil {
		c = &ctr{name: name, id: "gorunc-" + r.set.Commit[:8] + "-" + name, dir: filepath.Join(r.env.Dir, name)}
		// A container gets a terminal when one of its steps hands runc a console socket.
		for _, st := range r.set.Steps {
			if st.Container == name && (st.Expect == "created-console" || st.Expect == "exec-console") {
				c.terminal = true
			}
		}
		r.ctrs[name] = c
	}
	if c.prepared {
		return c, nil
	}
	spec := runcproof.Spec{CgroupsPath: r.env.CgroupParent + "/" + c.id, MemoryLimit: memoryLimit, Args: loop}
	if err := runcproof.Bundle(ctx, r.env.Runc, r.env.Busybox, filepath.Join(c.dir, "bundle"), spec); err != nil {
		return nil, err
	}
	if c.terminal {
		if err := setTerminal(filepath.Join(c.dir, "bundle", "config.json")); err != nil {
			return nil, err
		}
	}
	proc, err := json.Marshal(map[string]any{
		"terminal": c.terminal,
		"args":     []string{"/bin/sh", "-c", "echo exec-ok > /dev/shm/exec-ok"},
		"cwd":      "/",
		"env":      []string{"PATH=/bin"},
		"user":     map[string]int{"uid": 0, "gid": 0},
	})
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(c.dir, "process.json"), proc, 0o644); err != nil {
		return nil, err
	}
	c.console, err = listenConsole(filepath.Join(c.dir, "console.sock"))
	if err != nil {
		return nil, err
	}
	c.prepared = true
	return c, nil
}

// setTerminal sets process.terminal in a bundle's config.json.
func setTerminal(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	proc, _ := cfg["process"].(map[string]any)
	if proc == nil {
		return fmt.Errorf("%s: no process", path)
	}
	proc["terminal"] = true
	out, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	return os.WriteFile(path, out, 0o644)
}

// expand replaces the placeholders of args.
func (r *replay) expand(args []string, c *ctr) []string {
	vals := map[string]string{"root": r.root(), "log": r.logPath(), "criu": r.env.Criu}
	if c != nil {
		vals["bundle"] = filepath.Join(c.dir, "bundle")
		vals["pidfile"] = filepath.Join(c.dir, "init.pid")
		vals["execpidfile"] = filepath.Join(c.dir, "exec.pid")
		vals["process"] = filepath.Join(c.dir, "process.json")
		vals["id"] = c.id
		vals["console"] = filepath.Join(c.dir, "console.sock")
		vals["image"] = filepath.Join(c.dir, "checkpoint")
		vals["work"] = filepath.Join(c.dir, "criu-work")
		vals["parent"] = filepath.Join(c.dir, "checkpoint-parent")
	}
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = placeholder.ReplaceAllStringFunc(a, func(m string) string { return vals[m[1:len(m)-1]] })
	}
	return out
}

// output is what one runc call printed and how it ended.
type output struct {
	stdout, stderr, log []byte
	err                 error
}

func (o output) String() string {
	var b strings.Builder
	for _, p := range []struct {
		name string
		data []byte
	}{{"stdout", o.stdout}, {"stderr", o.stderr}, {"log", o.log}} {
		if d := bytes.TrimSpace(p.data); len(d) > 0 {
			if len(d) > 300 {
				d = append(d[:300:300], " …"...)
			}
			fmt.Fprintf(&b, "\n  %s: %s", p.name, d)
		}
	}
	return b.String()
}

// run replays one step and checks its expectation.
func (r *replay) run(ctx context.Context, st Step) ([]string, error) {
	var c *ctr
	if st.Container != "" {
		var err error
		if c, err = r.container(ctx, st.Container); err != nil {
			return nil, err
		}
	}
	args := r.expand(st.Args, c)
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if st.Expect == "stats-stream" {
		return args, r.statsStream(ctx, args)
	}
	out, err := r.exec(ctx, st, args)
	if err != nil {
		return args, err
	}
	return args, r.check(ctx, st, c, out)
}

// exec runs runc with args. Its output goes to files, not pipes: runc
// create and run hand their stdio to the container, which would keep a
// pipe open.
func (r *replay) exec(ctx context.Context, st Step, args []string) (output, error) {
	r.seq++
	base := filepath.Join(r.env.Dir, fmt.Sprintf("%02d-%s", r.seq, st.Name))
	stdout, err := os.Create(base + ".stdout")
	if err != nil {
		return output{}, err
	}
	defer stdout.Close()
	stderr, err := os.Create(base + ".stderr")
	if err != nil {
		return output{}, err
	}
	defer stderr.Close()
	logStart := fileSize(r.logPath())
	cmd := exec.CommandContext(ctx, r.env.Runc, args...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if st.Stdin != "" {
		cmd.Stdin = strings.NewReader(st.Stdin)
	}
	for i := 0; i < st.ExtraFiles; i++ {
		f, err := os.Open(os.DevNull)
		if err != nil {
			return output{}, err
		}
		defer f.Close()
		cmd.ExtraFiles = append(cmd.ExtraFiles, f)
	}
	o := output{err: cmd.Run()}
	o.stdout, _ = os.ReadFile(stdout.Name())
	o.stderr, _ = os.ReadFile(stderr.Name())
	if log, err := os.ReadFile(r.logPath()); err == nil && int64(len(log)) >= logStart {
		o.log = log[logStart:]
	}
	return o, nil
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// usageErrors are how runc (urfave/cli) refuses a flag or an argument.
var usageErrors = []string{"flag provided but not defined", "Incorrect Usage", "unknown flag", "invalid value", "requires exactly", "requires a minimum", "requires a maximum"}

// usageError returns runc's complaint about its command line, if any.
func usageError(o output) string {
	all := string(o.stdout) + string(o.stderr) + string(o.log)
	for _, u := range usageErrors {
		if i := strings.Index(all, u); i >= 0 {
			line := all[i:]
			if j := strings.IndexByte(line, '\n'); j >= 0 {
				line = line[:j]
			}
			return line
		}
	}
	return ""
}

// check runs st's expectation after the call.
func (r *replay) check(ctx context.Context, st Step, c *ctr, o output) error {
	if u := usageError(o); u != "" {
		return fmt.Errorf("runc refused its command line: %s%s", u, o)
	}
	switch st.Expect {
	case "flags-accepted":
		// The call may fail for want of criu or systemd; the point is
		// that runc took every flag. Clean up what restore may have left.
		if c != nil && !c.live {
			r.forceDelete(c)
		}
		return nil
	case "logged-error":
		if o.err == nil {
			return fmt.Errorf("want a failure, got exit 0%s", o)
		}
		return loggedError(o)
	}
	if o.err != nil {
		return fmt.Errorf("%w%s", o.err, o)
	}
	switch st.Expect {
	case "version":
		// go-runc's Version reads these lines (docker info shows them); runc
		// prints "commit: …" only when built with main.gitCommit, which a
		// build from the module proxy's zip of a tag cannot know (the lock
		// records the commit as unknown), and go-runc leaves Commit empty
		// then: no engine fails on it.
		lines := strings.Split(strings.TrimSpace(string(o.stdout)), "\n")
		if !strings.HasPrefix(lines[0], "runc version ") || !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, "spec: ") }) {
			return fmt.Errorf("want \"runc version …\" and \"spec: …\" lines (go-runc Version, docker info)%s", o)
		}
		return nil
	case "created", "created-console":
		pid, err := readPid(filepath.Join(c.dir, "init.pid"))
		if err != nil {
			return err
		}
		if err := r.wantState(ctx, c, "created", pid); err != nil {
			return err
		}
		c.live = true
		if st.Expect == "created-console" {
			return c.console.received(10 * time.Second)
		}
		return nil
	case "state-created", "state-running":
		want := strings.TrimPrefix(st.Expect, "state-")
		cs, err := parseState(o.stdout)
		if err != nil {
			return err
		}
		if cs.Status != want || cs.ID != c.id {
			return fmt.Errorf("state: id %q status %q, want %s %s", cs.ID, cs.Status, c.id, want)
		}
		return nil
	case "running":
		c.live = true
		return r.waitState(ctx, c, "running")
	case "paused":
		return r.waitState(ctx, c, "paused")
	case "stopped":
		return r.waitState(ctx, c, "stopped")
	case "pids":
		var pids []int
		if err := json.Unmarshal(o.stdout, &pids); err != nil {
			return fmt.Errorf("ps --format json: %w%s", err, o)
		}
		cs, err := r.state(ctx, c)
		if err != nil {
			return err
		}
		if !slices.Contains(pids, cs.Pid) {
			return fmt.Errorf("ps: pids %v lack the init pid %d", pids, cs.Pid)
		}
		return nil
	case "table":
		first, _, _ := strings.Cut(string(o.stdout), "\n")
		if !slices.Contains(strings.Fields(first), "PID") {
			return fmt.Errorf("ps --format table: no PID column (go-runc ParsePSOutput needs it)%s", o)
		}
		return nil
	case "exec", "exec-console":
		if _, err := readPid(filepath.Join(c.dir, "exec.pid")); err != nil {
			return err
		}
		cs, err := r.state(ctx, c)
		if err != nil {
			return err
		}
		file := filepath.Join("/proc", strconv.Itoa(cs.Pid), "root", "dev", "shm", "exec-ok")
		if err := poll(ctx, 10*time.Second, func() error {
			data, err := os.ReadFile(file)
			if err == nil && string(data) != "exec-ok\n" {
				err = fmt.Errorf("holds %q", data)
			}
			return err
		}); err != nil {
			return fmt.Errorf("the exec'd process did not write %s: %w", file, err)
		}
		if st.Expect == "exec-console" {
			return c.console.received(10 * time.Second)
		}
		return nil
	case "updated":
		file := filepath.Join("/sys/fs/cgroup/memory", r.env.CgroupParent, c.id, "memory.limit_in_bytes")
		data, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(data)) != strconv.Itoa(updateLimit) {
			return fmt.Errorf("%s is %s after update, want %d", file, bytes.TrimSpace(data), updateLimit)
		}
		return nil
	case "stats":
		return checkStats(o.stdout)
	case "listed":
		var list []struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		}
		if err := json.Unmarshal(o.stdout, &list); err != nil {
			return fmt.Errorf("list --format=json: %w%s", err, o)
		}
		if !slices.ContainsFunc(list, func(e struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		}) bool {
			return e.ID == c.id
		}) {
			return fmt.Errorf("list does not show %s%s", c.id, o)
		}
		return nil
	case "deleted":
		if _, err := os.Stat(filepath.Join(r.root(), c.id)); !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("runc state %s still there after delete: %v", filepath.Join(r.root(), c.id), err)
		}
		cg := filepath.Join("/sys/fs/cgroup/memory", r.env.CgroupParent, c.id)
		if err := poll(ctx, 5*time.Second, func() error {
			if _, err := os.Stat(cg); !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("cgroup %s still there after delete", cg)
			}
			return nil
		}); err != nil {
			return err
		}
		c.prepared, c.live = false, false
		c.console.close()
		return os.RemoveAll(c.dir)
	}
	return fmt.Errorf("unknown expectation %q", st.Expect)
}

// loggedError checks that the --log file got the error as containerd reads
// it (a JSON line with level "error" and a msg).
func loggedError(o output) error {
	for _, line := range bytes.Split(o.log, []byte("\n")) {
		var e struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
		}
		if json.Unmarshal(line, &e) == nil && e.Level == "error" && e.Msg != "" {
			return nil
		}
	}
	return fmt.Errorf("no JSON error line (level, msg) in the --log file, where containerd reads runc's errors%s", o)
}

// checkStats checks the first JSON object of an events stream.
func checkStats(data []byte) error {
	var e struct {
		Type string `json:"type"`
		Data struct {
			Memory json.RawMessage `json:"memory"`
		} `json:"data"`
	}
	if err := json.NewDecoder(bytes.NewReader(data)).Decode(&e); err != nil {
		return fmt.Errorf("events: %w: %s", err, data)
	}
	if e.Type != "stats" || len(e.Data.Memory) == 0 {
		return fmt.Errorf("events: type %q, memory %s: want stats with memory: %s", e.Type, e.Data.Memory, data)
	}
	return nil
}

// statsStream runs `events --interval`, reads its first event, and ends it
// (as go-runc does when its context ends).
func (r *replay) statsStream(ctx context.Context, args []string) error {
	cmd := exec.CommandContext(ctx, r.env.Runc, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	first := make(chan []byte, 1)
	go func() {
		var raw json.RawMessage
		json.NewDecoder(pipe).Decode(&raw)
		first <- raw
	}()
	var got []byte
	select {
	case got = <-first:
	case <-time.After(15 * time.Second):
	}
	cmd.Process.Kill()
	cmd.Wait()
	if u := usageError(output{stderr: stderr.Bytes()}); u != "" {
		return fmt.Errorf("runc refused its command line: %s", u)
	}
	if len(got) == 0 {
		return fmt.Errorf("no event in 15 s: %s", bytes.TrimSpace(stderr.Bytes()))
	}
	return checkStats(got)
}

// containerState is the part of `runc state` the checks read.
type containerState struct {
	ID     string `json:"id"`
	Pid    int    `json:"pid"`
	Status string `json:"status"`
}

func parseState(data []byte) (containerState, error) {
	var st containerState
	if err := json.Unmarshal(data, &st); err != nil {
		return st, fmt.Errorf("state: %w: %s", err, data)
	}
	return st, nil
}

// state asks runc (plain --root) for c's state.
func (r *replay) state(ctx context.Context, c *ctr) (containerState, error) {
	out, err := exec.CommandContext(ctx, r.env.Runc, "--root", r.root(), "state", c.id).Output()
	if err != nil {
		return containerState{}, fmt.Errorf("runc state %s: %w", c.id, err)
	}
	return parseState(out)
}

func (r *replay) wantState(ctx context.Context, c *ctr, status string, pid int) error {
	st, err := r.state(ctx, c)
	if err != nil {
		return err
	}
	if st.Status != status || st.Pid != pid {
		return fmt.Errorf("state of %s: %s pid %d, want %s pid %d (from --pid-file)", c.id, st.Status, st.Pid, status, pid)
	}
	return nil
}

// waitState polls c's state until it is status (10 s).
func (r *replay) waitState(ctx context.Context, c *ctr, status string) error {
	return poll(ctx, 10*time.Second, func() error {
		st, err := r.state(ctx, c)
		if err == nil && st.Status != status {
			err = fmt.Errorf("state of %s is %s, want %s", c.id, st.Status, status)
		}
		return err
	})
}

// poll calls f every 100 ms until it returns nil or timeout passes.
func poll(ctx context.Context, timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func readPid(path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("pid file: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pid file %s: %q", path, data)
	}
	return pid, nil
}

// forceDelete removes c if runc still knows it.
func (r *replay) forceDelete(c *ctr) {
	if _, err := os.Stat(filepath.Join(r.root(), c.id)); err != nil {
		return
	}
	exec.Command(r.env.Runc, "--root", r.root(), "delete", "--force", c.id).Run()
}

// cleanup deletes every container the replay left and closes its consoles.
func (r *replay) cleanup() {
	for _, c := range r.ctrs {
		r.forceDelete(c)
		if c.console != nil {
			c.console.close()
		}
	}
}
