//go:build mage

package main

import (
	"bytes"
	"fmt"
	"os"

	"github.com/nokmem/nokmem/internal/atomicfile"
	"github.com/nokmem/nokmem/internal/docgen"
)

// Docs writes the generated tables of README.md and docs/*.md (the exit
// codes from `verify exit-codes`, the supported versions and bundles from
// vendor-pins/matrix.yaml, the release workflow's build jobs, the mutation
// list) into their marked regions. `go test ./internal/docgen` fails while
// a committed doc differs from what this writes.
func Docs() error {
	gen, err := docgen.Generate(".")
	if err != nil {
		return err
	}
	for _, p := range docgen.SortedPaths(gen) {
		if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, gen[p]) {
			fmt.Printf("docs: %s is up to date\n", p)
			continue
		}
		if err := atomicfile.WriteFile(p, gen[p], 0o644); err != nil {
			return err
		}
		fmt.Printf("docs: wrote %s\n", p)
	}
	return nil
}
