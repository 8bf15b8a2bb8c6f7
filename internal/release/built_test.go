package release

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nokmem/nokmem/internal/layout"
	"github.com/nokmem/nokmem/internal/release/sign"
	"github.com/nokmem/nokmem/internal/testenv"
)

// TestBuiltReleaseSets checks the release sets `go tool mage release:all`
// wrote into _output: they verify with the public key published there, the
// reference minisign tool agrees, and the same sets are refused with a
// foreign key (a fresh key pair) and with a key file that does not exist.
func TestBuiltReleaseSets(t *testing.T) {
	pub := layout.New(filepath.Join("..", "..")).ReleasePub()
	testenv.RequireFile(t, "release public key (go tool mage release:all)", pub)
	minisignCmd := testenv.RequireCommand(t, "minisign")
	keys := t.TempDir()
	foreign := filepath.Join(keys, "foreign.pub")
	if err := sign.GenerateKey(filepath.Join(keys, "foreign.key"), foreign); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(keys, "missing.pub")
	for _, dir := range []string{"kubernetes/v1.12.4", "runc/v1.4.4"} { // the default pair (vendor-pins/matrix.yaml)
		t.Run(dir, func(t *testing.T) {
			d := filepath.Join("../../_output", dir)
			testenv.RequireFile(t, "release set (go tool mage release:all)", filepath.Join(d, SignatureFile))
			if err := Verify(d, pub); err != nil {
				t.Fatal(err)
			}
			sums := filepath.Join(d, "SHA256SUMS")
			if out, err := exec.Command(minisignCmd, "-Vm", sums, "-p", pub).CombinedOutput(); err != nil {
				t.Errorf("minisign -Vm %s -p %s: %v\n%s", sums, pub, err, out)
			}
			if err := Verify(d, foreign); !errors.Is(err, sign.ErrBadSignature) {
				t.Errorf("Verify with a foreign key = %v, want %v", err, sign.ErrBadSignature)
			}
			if out, err := exec.Command(minisignCmd, "-Vm", sums, "-p", foreign).CombinedOutput(); err == nil {
				t.Errorf("minisign accepts %s with a foreign key:\n%s", sums, out)
			}
			err := Verify(d, missing)
			if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
				t.Errorf("Verify with a missing key file = %v, want a not-exist error naming %s", err, missing)
			}
		})
	}
}
