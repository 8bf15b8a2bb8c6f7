package memcgsim

import (
	"errors"
	"fmt"
	"sync"
	"syscall"
	"testing"

	"github.com/moby/sys/mountinfo"

	"github.com/nokmem/nokmem/internal/testenv"
)

// MountForTest creates a simulator with profile p, mounts it on a temporary
// directory and unmounts it in t.Cleanup. It needs root and /dev/fuse
// (testenv.RequireFUSE: skips without them, fails under NOKMEM_STRICT=1).
// Its first call in a test process unmounts the simulators that killed
// test processes left mounted (SweepDeadMounts).
func MountForTest(t testing.TB, p Profile) (*Sim, *Mount) {
	t.Helper()
	testenv.RequireFUSE(t)
	sweepOnce.Do(func() {
		if swept, err := SweepDeadMounts(); err != nil {
			t.Logf("simulator mounts of killed tests: %v", err)
		} else if len(swept) > 0 {
			t.Logf("unmounted %d simulator mounts that killed test processes left: %v", len(swept), swept)
		}
	})
	s := New(p)
	m, err := s.Mount(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// Registered after TempDir's cleanup, so it runs first.
	t.Cleanup(func() {
		if err := m.Unmount(); err != nil {
			t.Errorf("%v", err)
		}
	})
	return s, m
}

var sweepOnce sync.Once

// SweepDeadMounts detaches every simulator mount whose server is gone: a
// test process killed by a timeout or SIGKILL runs no cleanup, and its
// mounts then answer ENOTCONN. A live simulator (another test process's)
// answers and is kept. It returns the mount points it detached.
func SweepDeadMounts() ([]string, error) {
	ms, err := mountinfo.GetMounts(mountinfo.FSTypeFilter("fuse." + fsName))
	if err != nil {
		return nil, err
	}
	var swept []string
	var errs []error
	for _, m := range ms {
		var st syscall.Stat_t
		if err := syscall.Stat(m.Mountpoint, &st); !errors.Is(err, syscall.ENOTCONN) {
			continue
		}
		if err := syscall.Unmount(m.Mountpoint, syscall.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("unmount %s: %w", m.Mountpoint, err))
			continue
		}
		swept = append(swept, m.Mountpoint)
	}
	return swept, errors.Join(errs...)
}
