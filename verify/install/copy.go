package install

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/nokmem/nokmem/internal/atomicfile"
)

// ErrDigest: a file's content changed between the check and the copy.
var ErrDigest = errors.New("sha256 mismatch")

// Hooks for tests: faultAfterCopy interrupts a copy after the data is
// written and before it is synced and renamed; faultStep fails the named
// step ("unpacked", "backup <path>", "record", "swap <path>", "commit";
// rollback's "restore <path>").
var (
	faultAfterCopy func(dst string) error
	faultStep      func(step string) error
)

func fault(step string) error {
	if faultStep == nil {
		return nil
	}
	return faultStep(step)
}

// copyAtomic copies src over dst (atomicfile.Write) and fails unless the
// bytes written hash to wantSHA.
func copyAtomic(src, dst, wantSHA string, mode fs.FileMode, owner atomicfile.Owner) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return atomicfile.Write(dst, mode, owner, func(w io.Writer) error {
		h := sha256.New()
		if _, err := io.Copy(io.MultiWriter(w, h), in); err != nil {
			return fmt.Errorf("copy %s: %w", src, err)
		}
		if faultAfterCopy != nil {
			if err := faultAfterCopy(dst); err != nil {
				return err
			}
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != wantSHA {
			return fmt.Errorf("%s: %w (want %s, copied %s)", src, ErrDigest, wantSHA, got)
		}
		return nil
	})
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
