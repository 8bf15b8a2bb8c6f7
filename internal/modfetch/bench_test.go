package modfetch_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/nokmem/nokmem/internal/modfetch"
	"github.com/nokmem/nokmem/internal/modfetch/modfetchtest"
	"github.com/nokmem/nokmem/internal/pins"
)

// BenchmarkFetchWarm measures a run whose modules are all in the module
// cache already: the cost of the go commands and of rehashing every zip.
func BenchmarkFetchWarm(b *testing.B) {
	for _, n := range []int{8, 64} {
		b.Run(fmt.Sprintf("modules=%d", n), func(b *testing.B) {
			p := modfetchtest.New(b)
			var mods []pins.Module
			for i := range n {
				mods = append(mods, p.Add(b, modfetchtest.Module{
					Path: fmt.Sprintf("example.com/m%d", i), Version: "v1.0.0",
					Files: map[string]string{"m.go": fmt.Sprintf("package m%d\n", i)},
				}))
			}
			f := modfetch.Fetcher{Env: p.Env(b)}
			if _, err := f.Fetch(context.Background(), mods); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				if _, err := f.Fetch(context.Background(), mods); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
