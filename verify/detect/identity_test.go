package detect_test

import (
	"strings"
	"testing"

	"github.com/nokmem/nokmem/internal/testenv"
	"github.com/nokmem/nokmem/verify/binary"
	"github.com/nokmem/nokmem/verify/detect"
	"github.com/nokmem/nokmem/verify/memcg"
)

// TestFakeNokmemIsUnknown is issue 21's "trust by version string": any
// binary that printed "+nokmem" counted as a nokmem build and the node read
// healthy. Now its sha256 decides: unknown (claims nokmem), a problem,
// until the operator lists its sha256 with --known-sums.
func TestFakeNokmemIsUnknown(t *testing.T) {
	testenv.RequireCommand(t, "sh")
	for _, name := range []string{"kubelet", "runc"} {
		version := map[string]string{"kubelet": "Kubernetes v1.12.4+nokmem.1bb862bb7552", "runc": "runc version 1.0.0-rc5+nokmem"}[name]
		p := fakeBinary(t, t.TempDir(), name, version, 0)
		b, err := binary.Identify(name, p, binary.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if b.Kind != binary.KindUnknown || !strings.HasPrefix(b.Reason, binary.ClaimsNokmem) || !strings.Contains(b.Reason, b.SHA256) || !b.Problem() {
			t.Errorf("%s printing %q: kind %s reason %q problem %v; want unknown (claims nokmem, naming its sha256), a problem", name, version, b.Kind, b.Reason, b.Problem())
		}
		r := &detect.Report{Semantics: memcg.Semantics{Kind: memcg.Kind310}, Semantics310: true, Binaries: []binary.Binary{b}}
		if ps := r.Problems(); len(ps) == 0 || !strings.Contains(ps[0].Text, "is unknown (claims nokmem") || r.Status() != detect.ProblemFound {
			t.Errorf("%s: problems %+v status %d", name, ps, r.Status())
		}
		known, err := binary.Identify(name, p, binary.Options{KnownSums: map[string]string{b.SHA256: name}})
		if err != nil {
			t.Fatal(err)
		}
		if known.Kind != binary.KindNokmem || known.Problem() {
			t.Errorf("%s listed in --known-sums: kind %s problem %v", name, known.Kind, known.Problem())
		}
	}
}
