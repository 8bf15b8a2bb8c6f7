//go:build mage

package main

import (
	"fmt"
	"os"

	"github.com/nokmem/nokmem/internal/atomicfile"
	"github.com/nokmem/nokmem/verify/affected/affectedgen"
)

// GenAffected writes verify/affected/matrix_gen.go from
// vendor-pins/matrix.yaml and its lock files: the version knowledge that
// `verify detect` uses on a node (which stock kubelet/runc versions are
// affected, which matrix version and bundle fix them). Run it after
// changing matrix.yaml or a lock, and commit the file;
// `go test ./verify/affected` fails while it is out of date.
func (Verify) GenAffected() error {
	src, err := affectedgen.Generate(pinsDir)
	if err != nil {
		return err
	}
	if old, err := os.ReadFile(affectedgen.Output); err == nil && string(old) == string(src) {
		fmt.Fprintf(os.Stderr, "verify: %s is up to date\n", affectedgen.Output)
		return nil
	}
	if err := atomicfile.WriteFile(affectedgen.Output, src, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "verify: wrote %s\n", affectedgen.Output)
	return nil
}
