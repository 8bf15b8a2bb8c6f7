package migrate_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/nokmem/nokmem/verify/memcg"
	"github.com/nokmem/nokmem/verify/migrate"
)

// TestCheckSemantics: migrate goes ahead only on what memcg decides is
// 3.10; a modern kernel is pointless, an undecided one unknown, and each
// refusal carries memcg's reason.
func TestCheckSemantics(t *testing.T) {
	for kind, want := range map[memcg.Kind]error{memcg.Kind310: nil, memcg.KindModern: migrate.ErrNoIDLeak, memcg.KindUnknown: migrate.ErrUnknownSemantics} {
		err := migrate.CheckSemantics(memcg.Semantics{Kind: kind, Reason: "the reason"})
		if !errors.Is(err, want) || want != nil && !strings.Contains(err.Error(), "the reason") {
			t.Errorf("%s: %v, want %v with the reason", kind, err, want)
		}
	}
}
