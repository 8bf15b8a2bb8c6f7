package install

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nokmem/nokmem/internal/testenv"
)

// TestCheckWritableReadOnlyFS is the issue's "a read-only file system as
// insufficient privileges": root who cannot write a target directory
// because its file system is mounted read-only is told so (EROFS), not
// that it lacks privileges.
func TestCheckWritableReadOnlyFS(t *testing.T) {
	testenv.RequireRoot(t)
	mount := testenv.RequireCommand(t, "mount")
	dir := t.TempDir()
	if out, err := exec.Command(mount, "-t", "tmpfs", "-o", "size=64k,ro", "nokmem-test", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	err := checkWritable(filepath.Join(t.TempDir(), "state"), []string{dir})
	if !errors.Is(err, unix.EROFS) || errors.Is(err, ErrPrivileges) || !strings.Contains(err.Error(), "cannot write "+dir+": read-only file system") {
		t.Fatalf("checkWritable on a read-only file system: %v", err)
	}
}
