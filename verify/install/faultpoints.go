//go:build nokmem_faultpoints

package install

import (
	"os"
	"path/filepath"
	"syscall"
)

// Built with -tags nokmem_faultpoints (by tests only), a verify process
// kills itself with SIGKILL at the fault point NOKMEM_KILL_AT names: a step
// of Install ("unpacked", "backup <path>", "record", "swap <path>",
// "commit") or Rollback ("restore <path>"), "copy <target>" (a swap's temporary file is written, not yet
// renamed) or "copy backup" (the same for a backup copy).
func init() {
	at := os.Getenv("NOKMEM_KILL_AT")
	if at == "" {
		return
	}
	kill := func() {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	faultStep = func(step string) error {
		if step == at {
			kill()
		}
		return nil
	}
	faultAfterCopy = func(dst string) error {
		if at == "copy "+dst || (at == "copy backup" && filepath.Base(filepath.Dir(dst)) == BackupDir) {
			kill()
		}
		return nil
	}
}
