package memcgsim

import (
	"testing"

	"github.com/nokmem/nokmem/internal/testenv"
)

// MountForTest creates a simulator with profile p, mounts it on a temporary
// directory and unmounts it in t.Cleanup. It needs root and /dev/fuse
// (testenv.RequireFUSE: skips without them, fails under NOKMEM_STRICT=1).
func MountForTest(t testing.TB, p Profile) (*Sim, *Mount) {
	t.Helper()
	testenv.RequireFUSE(t)
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
