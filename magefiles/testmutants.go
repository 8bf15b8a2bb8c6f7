//go:build mage

package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nokmem/nokmem/internal/mutants"
)

// Mutants is the mutation check: it applies each one-line bug of
// internal/mutants.List to a temporary copy of the repository, runs only the
// tests that must catch it, and fails if any bug survives, if an entry's old
// text is not found exactly once, or if a mutated copy does not build. The
// tests see the built _output (linked into the copy) and inherit
// NOKMEM_STRICT, so privileged tests fail rather than skip.
func Mutants(ctx context.Context) error {
	start := time.Now()
	results, err := mutants.Run(ctx, mutants.Config{Repo: ".", Link: []string{repo.OutputRoot()}, Log: os.Stderr}, mutants.List)
	killed := 0
	for _, r := range results {
		if r.Verdict == mutants.Killed {
			killed++
		}
	}
	fmt.Printf("mutants: %d of %d killed in %s\n", killed, len(mutants.List), time.Since(start).Round(time.Second))
	return err
}
