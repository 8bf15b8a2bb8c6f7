// Package testrun runs `go test -json`, relays the tests' own output as it
// comes, and ends with one plain tally line ("test: N passed, N failed, N
// skipped") so that a reader of CI logs sees at once what ran.
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

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
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
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1024*1024), 16*1024*1024)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			// Not JSON: a build error printed by the go command itself.
			fmt.Fprintln(out, sc.Text())
			continue
		}
		switch e.Action {
		case "output":
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
	}
	sort.Strings(t.FailedNames)
	return t, sc.Err()
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
