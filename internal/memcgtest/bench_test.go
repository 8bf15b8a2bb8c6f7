package memcgtest_test

import (
	"testing"

	"github.com/nokmem/nokmem/internal/memcgsim"
	"github.com/nokmem/nokmem/internal/memcgtest"
)

// benchNodes are the nodes the benchmarks run on.
var benchNodes = []struct {
	name string
	new  func(b *testing.B) *memcgtest.Node
}{
	{"sim", func(b *testing.B) *memcgtest.Node { return memcgtest.Sim(b, memcgsim.RHEL78) }},
	{"real", func(b *testing.B) *memcgtest.Node { return memcgtest.Real(b) }},
}

// BenchmarkWalk10k walks a kubepods tree of 10,003 cgroups (kubepods,
// burstable, besteffort, 2,000 pods with 4 containers each).
func BenchmarkWalk10k(b *testing.B) {
	for _, be := range benchNodes {
		b.Run(be.name, func(b *testing.B) {
			n := be.new(b)
			n.Kubepods(memcgtest.QoS, 2000, 4)
			for b.Loop() {
				all, err := n.H.Walk(n.Rel("kubepods"))
				if err != nil {
					b.Fatal(err)
				}
				if len(all) != 10003 {
					b.Fatalf("walked %d cgroups", len(all))
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/10003, "µs/cgroup")
		})
	}
}

// BenchmarkMove1000 moves 1,000 processes between two cgroups through
// cgroup.procs, one write per pid; one op is 1,000 moves.
func BenchmarkMove1000(b *testing.B) {
	for _, be := range benchNodes {
		b.Run(be.name, func(b *testing.B) {
			n := be.new(b)
			n.Mkdir("a", "b")
			pids := make([]int, 1000)
			for i := range pids {
				pids[i] = n.Sleep("a").Pid
			}
			dst := "b"
			for b.Loop() {
				for _, pid := range pids {
					if err := n.H.Move(n.Rel(dst), pid); err != nil {
						b.Fatal(err)
					}
				}
				if dst == "b" {
					dst = "a"
				} else {
					dst = "b"
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "µs/move")
		})
	}
}
