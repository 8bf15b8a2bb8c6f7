//go:build mage

package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// NoopBuild measures a build with nothing changed: it runs `go tool mage
// build` once to bring every step up to date, then again, and prints the
// second run's wall time (go tool and mage startup included), the time of
// each step and the lines in which each step said it was up to date. It
// fails when a step of the second run did work. It prints figures and
// asserts no time.
func NoopBuild(ctx context.Context) error {
	if _, err := runBuild(ctx); err != nil {
		return fmt.Errorf("first build: %w", err)
	}
	start := time.Now()
	out, err := runBuild(ctx)
	wall := time.Since(start)
	if err != nil {
		return fmt.Errorf("second build: %w\n%s", err, out)
	}
	var upToDate, ran []string
	var steps string
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.Contains(line, ": up to date, nothing to do"):
			upToDate = append(upToDate, line)
		case strings.Contains(line, ": running (") || strings.Contains(line, ": published ") || strings.Contains(line, "\"upToDate\": false"):
			ran = append(ran, line)
		case strings.HasPrefix(line, "build: steps took "):
			steps = strings.TrimPrefix(line, "build: ")
		}
	}
	fmt.Printf("no-op build: %s wall (go tool mage startup included)\n  %s\n", wall.Round(time.Millisecond), steps)
	for _, l := range upToDate {
		fmt.Printf("  %s\n", l)
	}
	if len(ran) > 0 || steps == "" {
		return fmt.Errorf("the second build did work:\n%s", strings.Join(ran, "\n"))
	}
	return nil
}

// runBuild runs `go tool mage build` and returns its stdout and stderr.
func runBuild(ctx context.Context) (string, error) {
	var b bytes.Buffer
	cmd := exec.CommandContext(ctx, "go", "tool", "mage", "build")
	cmd.Stdout, cmd.Stderr = &b, &b
	cmd.Env = os.Environ()
	err := cmd.Run()
	return b.String(), err
}
