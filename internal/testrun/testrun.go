// Package testrun reads `go test -json` streams (Scan), and runs `go test
// -json`, relaying the tests' own output as it comes and ending with one
// plain tally line ("test: N passed, N failed, N skipped") so that a reader
// of CI logs sees at once what ran.
package testrun

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
)

// Event is one line of `go test -json` (cmd/test2json). A line that is not
// JSON (a build error printed by the go command itself) is an Event with no
// Action and the line, newline-terminated, as Output.
type Event struct {
	Action     string
	Package    string
	ImportPath string // build-output and build-fail events: "path [path.test]"
	Test       string
	Output     string
}

// Scan calls fn for every event of a `go test -json` stream.
func Scan(r io.Reader, fn func(Event)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1024*1024), 16*1024*1024)
	for sc.Scan() {
		line := sc.Bytes()
		var e Event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			e = Event{Output: string(line) + "\n"}
		}
		fn(e)
	}
	return sc.Err()
}

// Tally counts test results.
type Tally struct {
	Passed, Failed, Skipped int
	// FailedNames lists "package.Test" for every failed test and every package that failed to build.
	FailedNames []string
}

// String formats the tally as the closing line.
func (t Tally) String() string {
	return fmt.Sprintf("%d passed, %d failed, %d skipped", t.Passed, t.Failed, t.Skipped)
}

// Read consumes a `go test -json` stream, copying every output line to out,
// and returns the tally. Package-level failures (build errors, a crash
// outside a test) count as failures too.
func Read(r io.Reader, out io.Writer) (Tally, error) {
	var t Tally
	failedTests := map[string]bool{} // packages with at least one failed test
	err := Scan(r, func(e Event) {
		switch e.Action {
		case "", "output":
			fmt.Fprint(out, e.Output)
		case "pass":
			if e.Test != "" {
				t.Passed++
			}
		case "skip":
			if e.Test != "" {
				t.Skipped++
			}
		case "fail":
			if e.Test != "" {
				t.Failed++
				failedTests[e.Package] = true
				t.FailedNames = append(t.FailedNames, e.Package+"."+e.Test)
			} else if !failedTests[e.Package] {
				t.Failed++
				t.FailedNames = append(t.FailedNames, e.Package+" (package)")
			}
		}
	})
	sort.Strings(t.FailedNames)
	return t, err
}

// Run runs `go test -json args...` in dir with the current environment, relays
// its output to stdout and returns the tally; the error is non-nil when any
// test or package failed.
func Run(dir string, args ...string) (Tally, error) {
	cmd := exec.Command("go", append([]string{"test", "-json"}, args...)...)
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return Tally{}, err
	}
	if err := cmd.Start(); err != nil {
		return Tally{}, fmt.Errorf("go test: %w", err)
	}
	t, readErr := Read(pipe, os.Stdout)
	waitErr := cmd.Wait()
	if readErr != nil {
		return t, fmt.Errorf("read go test output: %w", readErr)
	}
	if t.Failed > 0 {
		return t, fmt.Errorf("go test: %d failed: %v", t.Failed, t.FailedNames)
	}
	if waitErr != nil {
		return t, fmt.Errorf("go test: %w", waitErr)
	}
	return t, nil
}
