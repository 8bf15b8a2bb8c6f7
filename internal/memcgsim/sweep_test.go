package memcgsim

import (
	"bufio"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"

	"github.com/nokmem/nokmem/internal/testenv"
)

// helperMountEnv makes the test binary a process that mounts a simulator
// on the directory it names, says so, and waits to be killed.
const helperMountEnv = "NOKMEM_SIM_HELPER_MOUNT"

func TestMain(m *testing.M) {
	if dir := os.Getenv(helperMountEnv); dir != "" {
		if _, err := New(RHEL78).Mount(dir); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Stdout.WriteString("mounted\n")
		time.Sleep(time.Hour)
	}
	os.Exit(m.Run())
}

// TestSweepDeadMounts: a test process killed with SIGKILL leaves its
// simulator mounted, its server gone; SweepDeadMounts detaches it and
// keeps a live simulator's mount.
func TestSweepDeadMounts(t *testing.T) {
	testenv.RequireFUSE(t)
	_, live := MountForTest(t, Modern)
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperMountEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) }) // if the sweep fails
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "mounted\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper: %q, %v", line, err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if mounted, err := isMounted(dir); err != nil || !mounted {
		t.Fatalf("the killed helper's mount at %s: mounted %v, %v", dir, mounted, err)
	}
	swept, err := SweepDeadMounts()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(swept, dir) || slices.Contains(swept, live.Root) {
		t.Errorf("swept %v, want %s and not the live %s", swept, dir, live.Root)
	}
	if mounted, _ := isMounted(dir); mounted {
		t.Errorf("%s still mounted", dir)
	}
	if mounted, _ := isMounted(live.Root); !mounted {
		t.Errorf("the live simulator at %s was unmounted", live.Root)
	}
}

// isMounted reads the mount table (a stat of a dead FUSE mount fails).
func isMounted(dir string) (bool, error) {
	ms, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(dir))
	return len(ms) > 0, err
}
