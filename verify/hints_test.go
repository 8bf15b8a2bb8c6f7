package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/nokmem/nokmem/verify/install"
)

// TestExplain: the command layer adds the flag or command to a library
// error once, keeps the error's identity, and leaves other errors alone.
func TestExplain(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("install: %w", install.ErrNoTargets), "(use --create PATH to install one anyway)"},
		{fmt.Errorf("%w at /k.pub: copy the release public key there", install.ErrNoKey), "or pass --pubkey KEY"},
		{fmt.Errorf("rollback: %w: /usr/bin/runc has sha256 x", install.ErrForeignChange), "(--force restores the originals over these changes)"},
		{fmt.Errorf("%w /s/install.json: bad", install.ErrUntrustedRecord), "`verify install --abandon --state-dir /s`"},
	} {
		got := explain(explain(tt.err, "/s"), "/s")
		if !errors.Is(got, tt.err) || strings.Count(got.Error(), tt.want) != 1 || !strings.HasPrefix(got.Error(), tt.err.Error()) {
			t.Errorf("explain(%v) = %v, want %q added once", tt.err, got, tt.want)
		}
	}
	plain := errors.New("mkdir x: permission denied")
	if got := explain(plain, "/s"); got != plain {
		t.Errorf("explain(%v) = %v", plain, got)
	}
}
