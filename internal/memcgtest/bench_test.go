package memcgtest_test

import (
	"testing"

	"github.com/nokmem/nokmem/internal/memcgsim"
	"github.com/nokmem/nokmem/internal/memcgtest"
	"github.com/nokmem/nokmem/verify/memcg"
)

// benchBackend is what the benchmarks need from a backend.
type benchBackend struct {
	h    memcg.Hierarchy
	base string
	// procs starts n processes in cgroup rel and returns their pids.
	procs func(rel string, n int) []int
}

func (b benchBackend) p(rel string) string {
	if rel == "" {
		return b.base
	}
	if b.base == "" {
		return rel
	}
	return b.base + "/" + rel
}

var benchBackends = []struct {
	name string
	new  func(b *testing.B) benchBackend
}{
	{"sim", func(b *testing.B) benchBackend {
		sim, m := memcgsim.MountForTest(b, memcgsim.RHEL78)
		return benchBackend{h: memcg.Hierarchy{Root: m.Memory}, procs: func(rel string, n int) []int {
			pids := make([]int, n)
			for i := range pids {
				pid, err := sim.AddTask(rel, 0)
				if err != nil {
					b.Fatal(err)
				}
				pids[i] = pid
			}
			return pids
		}}
	}},
	{"real", func(b *testing.B) benchBackend {
		tr := memcgtest.Scratch(b)
		return benchBackend{h: tr.H, base: tr.Base, procs: func(rel string, n int) []int {
			pids := make([]int, n)
			for i := range pids {
				pids[i] = tr.Sleep(rel).Pid
			}
			return pids
		}}
	}},
}

// BenchmarkWalk10k walks a kubepods tree of 10,003 cgroups (kubepods,
// burstable, besteffort, 2,000 pods with 4 containers each).
func BenchmarkWalk10k(b *testing.B) {
	for _, be := range benchBackends {
		b.Run(be.name, func(b *testing.B) {
			bb := be.new(b)
			memcgtest.BuildKubepods(b, func(rel string) error { return bb.h.Mkdir(bb.p(rel)) }, memcgtest.QoS, 2000, 4)
			for b.Loop() {
				all, err := bb.h.Walk(bb.p("kubepods"))
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
	for _, be := range benchBackends {
		b.Run(be.name, func(b *testing.B) {
			bb := be.new(b)
			for _, c := range []string{"a", "b"} {
				if err := bb.h.Mkdir(bb.p(c)); err != nil {
					b.Fatal(err)
				}
			}
			pids := bb.procs("a", 1000)
			dst := "b"
			for b.Loop() {
				for _, pid := range pids {
					if err := bb.h.Move(bb.p(dst), pid); err != nil {
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
