// Package elfcheck tells whether a Linux binary runs on an old glibc: either
// it is fully static (no PT_INTERP program header and no DT_NEEDED entry), or
// every GLIBC_x.y symbol version it requires is at most a given version (2.17
// for CentOS 7).
package elfcheck

import (
	"debug/elf"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// CentOS7GLIBC is the glibc of CentOS/RHEL 7.
const CentOS7GLIBC = "2.17"

// Report describes a binary's dynamic linking.
type Report struct {
	// Interp is the PT_INTERP program interpreter, "" for none.
	Interp string
	// Needed are the DT_NEEDED libraries.
	Needed []string
	// GLIBC maps each required GLIBC_ version to the symbols that require it.
	GLIBC map[string][]string
}

// Static reports whether the binary needs no loader and no shared library.
func (r *Report) Static() bool { return r.Interp == "" && len(r.Needed) == 0 }

// Inspect reads path's dynamic linking information.
func Inspect(path string) (*Report, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("elf check %s: %w", path, err)
	}
	defer f.Close()
	r := &Report{GLIBC: map[string][]string{}}
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		b := make([]byte, p.Filesz)
		if _, err := p.ReadAt(b, 0); err != nil {
			return nil, fmt.Errorf("elf check %s: read PT_INTERP: %w", path, err)
		}
		r.Interp = strings.TrimRight(string(b), "\x00")
	}
	r.Needed, err = f.ImportedLibraries()
	if err != nil {
		return nil, fmt.Errorf("elf check %s: DT_NEEDED: %w", path, err)
	}
	syms, err := f.ImportedSymbols()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return nil, fmt.Errorf("elf check %s: dynamic symbols: %w", path, err)
	}
	for _, s := range syms {
		if v, ok := strings.CutPrefix(s.Version, "GLIBC_"); ok {
			r.GLIBC[v] = append(r.GLIBC[v], s.Name)
		}
	}
	return r, nil
}

// Check fails unless path is static or needs no GLIBC_ version newer than
// maxGLIBC (e.g. "2.17"); the error names the newest versions and symbols.
func Check(path, maxGLIBC string) (*Report, error) {
	r, err := Inspect(path)
	if err != nil {
		return nil, err
	}
	if r.Static() {
		return r, nil
	}
	var newer []string
	for v, syms := range r.GLIBC {
		c, err := compare(v, maxGLIBC)
		if err != nil {
			return r, fmt.Errorf("elf check %s: %w", path, err)
		}
		if c > 0 {
			sort.Strings(syms)
			newer = append(newer, fmt.Sprintf("GLIBC_%s (%s)", v, strings.Join(syms, ", ")))
		}
	}
	if len(newer) > 0 {
		sort.Strings(newer)
		return r, fmt.Errorf("elf check %s: dynamically linked (interpreter %q, needs %s) and requires glibc newer than %s: %s",
			path, r.Interp, strings.Join(r.Needed, ", "), maxGLIBC, strings.Join(newer, "; "))
	}
	return r, nil
}

// compare compares dotted versions numerically ("2.9" < "2.17").
func compare(a, b string) (int, error) {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) || i < len(bs); i++ {
		var x, y int
		var err error
		if i < len(as) {
			if x, err = strconv.Atoi(as[i]); err != nil {
				return 0, fmt.Errorf("version %q: %w", a, err)
			}
		}
		if i < len(bs) {
			if y, err = strconv.Atoi(bs[i]); err != nil {
				return 0, fmt.Errorf("version %q: %w", b, err)
			}
		}
		if x != y {
			if x < y {
				return -1, nil
			}
			return 1, nil
		}
	}
	return 0, nil
}
