//go:build mage

package main

import (
	"context"
	"fmt"
	"os"

	"github.com/nokmem/nokmem/internal/atomicfile"
	"github.com/nokmem/nokmem/internal/vulndb"
	"github.com/nokmem/nokmem/verify/affected/affectedgen"
)

// GenAffected writes verify/affected/matrix_gen.go from
// vendor-pins/matrix.yaml and its lock files: the version knowledge that
// `verify detect` uses on a node (which stock kubelet/runc versions are
// affected, which matrix version and bundle fix them); and
// verify/affected/vulns_gen.go from the pinned vulnerability database
// (vendor-pins/vulndb/lock.yaml, fetched and checked) and
// vendor-pins/vulndb/supplement.yaml: the known vulnerabilities of every
// runc and kubelet version. Run it after changing matrix.yaml, a lock, the
// database pin or the supplement, and commit the files;
// `go test ./verify/affected` fails while one is out of date.
func (Verify) GenAffected(ctx context.Context) error {
	src, err := affectedgen.Generate(pinsDir)
	if err != nil {
		return err
	}
	if err := writeGenerated(affectedgen.Output, src); err != nil {
		return err
	}
	db, err := vulndb.Open(ctx, newFetcher(), pinsDir)
	if err != nil {
		return err
	}
	if src, err = affectedgen.GenerateVulns(db); err != nil {
		return err
	}
	return writeGenerated(affectedgen.VulnsOutput, src)
}

// writeGenerated writes a generated file unless it is up to date.
func writeGenerated(path string, src []byte) error {
	if old, err := os.ReadFile(path); err == nil && string(old) == string(src) {
		fmt.Fprintf(os.Stderr, "verify: %s is up to date\n", path)
		return nil
	}
	if err := atomicfile.WriteFile(path, src, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "verify: wrote %s\n", path)
	return nil
}
