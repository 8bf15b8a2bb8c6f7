package affectedgen_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nokmem/nokmem/verify/affected/affectedgen"
)

// copyPins copies vendor-pins into a temporary folder.
func copyPins(t *testing.T) string {
	t.Helper()
	dst := t.TempDir()
	err := os.CopyFS(dst, os.DirFS("../../../vendor-pins"))
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestCheckCatchesAnEditedRow: the staleness check passes on a fresh
// output, and fails, naming the command to run and the line, after a
// matrix row changes (what another branch's matrix edit does).
func TestCheckCatchesAnEditedRow(t *testing.T) {
	pinsDir := copyPins(t)
	gen := filepath.Join(t.TempDir(), "matrix_gen.go")
	src, err := affectedgen.Generate(pinsDir)
	if err != nil {
		t.Fatal(err)
	}
	again, err := affectedgen.Generate(pinsDir)
	if err != nil || string(again) != string(src) {
		t.Fatalf("two generations differ (%v)", err)
	}
	if err := os.WriteFile(gen, src, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := affectedgen.Check(pinsDir, gen); err != nil {
		t.Fatalf("fresh output: %v", err)
	}
	matrix := filepath.Join(pinsDir, "matrix.yaml")
	data, err := os.ReadFile(matrix)
	if err != nil {
		t.Fatal(err)
	}
	// The first row with a reason (every matrix has one: the unaffected rows).
	const reason = "reason: \""
	if !strings.Contains(string(data), reason) {
		t.Fatalf("%s has no reason to edit", matrix)
	}
	edited := strings.Replace(string(data), reason, reason+"edited: ", 1)
	if err := os.WriteFile(matrix, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	err = affectedgen.Check(pinsDir, gen)
	if !errors.Is(err, affectedgen.ErrStale) || !strings.Contains(err.Error(), "run `go tool mage verify:genAffected`") || !strings.Contains(err.Error(), "edited: ") {
		t.Fatalf("after editing a row: %v", err)
	}
}

// TestGenerateRefusesABadMatrix: a matrix that pins.LoadMatrix refuses
// stops the generator with the file named.
func TestGenerateRefusesABadMatrix(t *testing.T) {
	pinsDir := copyPins(t)
	if err := os.WriteFile(filepath.Join(pinsDir, "matrix.yaml"), []byte("versions:\n  - {project: runc, version: v9, status: bogus, source: gomod}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := affectedgen.Generate(pinsDir)
	if err == nil || !strings.Contains(err.Error(), "matrix.yaml") || !strings.Contains(err.Error(), "bogus") {
		t.Fatalf("bad matrix: %v", err)
	}
}

// TestCheckVulnsCatchesASupplementEdit: the committed vulns_gen.go is up to
// date with the pinned database; after a supplement entry changes its fixed
// version, the check fails naming the command.
func TestCheckVulnsCatchesASupplementEdit(t *testing.T) {
	pinsDir := copyPins(t)
	const gen = "../vulns_gen.go"
	if err := affectedgen.CheckVulns(t.Context(), pinsDir, gen); err != nil {
		t.Fatalf("committed table: %v", err)
	}
	p := filepath.Join(pinsDir, "vulndb", "supplement.yaml")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(data), "fixed: v1.0.0-rc7", "fixed: v1.0.0-rc8", 1)
	if edited == string(data) {
		t.Fatalf("%s has no rc7 fix to edit", p)
	}
	if err := os.WriteFile(p, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	err = affectedgen.CheckVulns(t.Context(), pinsDir, gen)
	if !errors.Is(err, affectedgen.ErrStale) || !strings.Contains(err.Error(), "go tool mage verify:genAffected") || !strings.Contains(err.Error(), "v1.0.0-rc8") {
		t.Fatalf("after editing the supplement: %v", err)
	}
}

// TestCheckCatchesAChangedChecksum: the published sha256 of every
// buildable version is part of the generated file, so a changed CHECKSUMS
// makes it stale.
func TestCheckCatchesAChangedChecksum(t *testing.T) {
	pinsDir := copyPins(t)
	gen := filepath.Join(t.TempDir(), "matrix_gen.go")
	src, err := affectedgen.Generate(pinsDir)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(pinsDir, "runc", "v1.0.0-rc5.CHECKSUMS")
	old, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	sum, _, _ := strings.Cut(string(old), " ")
	if !strings.Contains(string(src), `SHA256: "`+sum+`", Name: "runc", Project: "runc", Version: "v1.0.0-rc5"`) {
		t.Fatalf("generated file lacks the published runc rc5 sha256 %s", sum)
	}
	if err := os.WriteFile(gen, src, 0o644); err != nil {
		t.Fatal(err)
	}
	other := strings.Repeat("0", 64)
	if err := os.WriteFile(p, []byte(strings.Replace(string(old), sum, other, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := affectedgen.Check(pinsDir, gen); !errors.Is(err, affectedgen.ErrStale) || !strings.Contains(err.Error(), other) {
		t.Fatalf("after changing %s: %v", p, err)
	}
}
