package report

import (
	"bytes"
	"fmt"
	"time"

	"github.com/jstemmer/go-junit-report/v2/junit"

	"github.com/nokmem/nokmem/internal/atomicfile"
)

// Step outcomes.
const (
	Passed  = "passed"
	Failed  = "failed"
	Skipped = "skipped"
)

// Step is one step of a verify run, as it appears in the reports.
type Step struct {
	Name     string        `json:"name"`
	Status   string        `json:"status"`
	Duration time.Duration `json:"duration_ns"`
	// Message says why the step failed or was skipped.
	Message string `json:"message,omitempty"`
	// Details is free text (for example the offenders of assert).
	Details string `json:"details,omitempty"`
}

// Property is a name and value of a JUnit suite (a figure of the run).
type Property struct {
	Name, Value string
}

// JUnit turns steps into a JUnit document with one suite named suite, one
// test case per step, and the suite's properties props.
func JUnit(suite string, start time.Time, steps []Step, props ...Property) junit.Testsuites {
	ts := junit.Testsuite{Name: suite}
	ts.SetTimestamp(start)
	for _, p := range props {
		ts.AddProperty(p.Name, p.Value)
	}
	var total time.Duration
	for _, s := range steps {
		tc := junit.Testcase{Name: s.Name, Classname: suite, Time: seconds(s.Duration)}
		switch s.Status {
		case Failed:
			tc.Failure = &junit.Result{Message: s.Message, Type: "failure", Data: s.Details}
		case Skipped:
			tc.Skipped = &junit.Result{Message: s.Message}
		}
		if s.Details != "" && s.Status != Failed {
			tc.SystemOut = &junit.Output{Data: s.Details}
		}
		ts.AddTestcase(tc)
		total += s.Duration
	}
	ts.Time = seconds(total)
	var doc junit.Testsuites
	doc.AddSuite(ts)
	return doc
}

// WriteJUnit writes the JUnit document of steps (JUnit) to path atomically.
func WriteJUnit(path, suite string, start time.Time, steps []Step, props ...Property) error {
	doc := JUnit(suite, start, steps, props...)
	var b bytes.Buffer
	if err := doc.WriteXML(&b); err != nil {
		return fmt.Errorf("junit %s: %w", path, err)
	}
	return atomicfile.WriteFile(path, b.Bytes(), 0o644)
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }
