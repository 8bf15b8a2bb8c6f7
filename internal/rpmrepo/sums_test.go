package rpmrepo

import (
	"path/filepath"
	"testing"

	"github.com/nokmem/nokmem/internal/release/sign"
	"github.com/nokmem/nokmem/internal/release/sums"
)

func writeSums(t *testing.T, dir, key string, names ...string) {
	t.Helper()
	if _, err := sums.Write(dir, names, nil); err != nil {
		t.Fatal(err)
	}
	if err := sign.File(filepath.Join(dir, sums.SHA256.SumsFile), key); err != nil {
		t.Fatal(err)
	}
}
