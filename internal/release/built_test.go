package release

import (
	"path/filepath"
	"testing"

	"github.com/nokmem/nokmem/internal/testenv"
)

// TestBuiltReleaseSets checks the release sets `go tool mage release:all`
// wrote into _output with the public key it published there.
func TestBuiltReleaseSets(t *testing.T) {
	pub := "../../_output/nokmem-release.pub"
	testenv.RequireFile(t, "release public key (go tool mage release:all)", pub)
	for _, dir := range []string{"kubernetes/v1.12.4", "runc/v1.0.0-rc5"} {
		t.Run(dir, func(t *testing.T) {
			d := filepath.Join("../../_output", dir)
			testenv.RequireFile(t, "release set (go tool mage release:all)", filepath.Join(d, SignatureFile))
			if err := Verify(d, pub); err != nil {
				t.Fatal(err)
			}
		})
	}
}
