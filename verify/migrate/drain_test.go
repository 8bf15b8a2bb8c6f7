package migrate

import (
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/nokmem/nokmem/internal/memcgsim"
	"github.com/nokmem/nokmem/verify/memcg"
)

// TestDrainCatchesForks: every move out of the source races a fork that
// lands in the source (a chain of 30 generations), so only re-reading the
// source until it is empty leaves it empty.
func TestDrainCatchesForks(t *testing.T) {
	s, m := memcgsim.MountForTest(t, memcgsim.RHEL78)
	h := memcg.Hierarchy{Root: m.Memory}
	for _, d := range []string{"src", "dst"} {
		if err := h.Mkdir(d); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.AddTask("src", 4096); err != nil {
		t.Fatal(err)
	}
	const generations = 30
	var mu sync.Mutex
	forks := 0
	s.SetHook(func(op memcgsim.Op) error {
		if op.Kind != memcgsim.OpMove {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		if forks == generations {
			return nil
		}
		forks++
		_, err := s.AddTask("src", 4096)
		return err
	})
	t.Cleanup(func() { s.SetHook(nil) })
	mv := &mover{fs: cgfs{h: h, n: &OpCounts{}}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if _, err := mv.drain("src", "dst", false); err != nil {
		t.Fatal(err)
	}
	left, err := h.Procs("src")
	if err != nil {
		t.Fatal(err)
	}
	moved, err := h.Procs("dst")
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 || len(moved) != generations+1 || mv.moved != generations+1 {
		t.Errorf("after drain: %d left in src, %d in dst, %d moves; want 0, %d, %d", len(left), len(moved), mv.moved, generations+1, generations+1)
	}
}
