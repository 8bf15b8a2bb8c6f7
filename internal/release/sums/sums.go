// Package sums writes and checks coreutils-style checksum files: SHA256SUMS
// and SHA512SUMS for a directory, and <file>.sha256 / <file>.sha512 beside
// each file, in the format `sha256sum -c` reads ("<hex>  <name>").
package sums

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Algorithm is one checksum kind.
type Algorithm struct {
	// SumsFile is the directory-wide file, e.g. "SHA256SUMS".
	SumsFile string
	// Ext is the suffix of the file written beside each artifact, e.g. ".sha256".
	Ext string
	New func() hash.Hash
}

// Algorithms are the checksums written for every release directory.
var Algorithms = []Algorithm{
	{SumsFile: "SHA256SUMS", Ext: ".sha256", New: sha256.New},
	{SumsFile: "SHA512SUMS", Ext: ".sha512", New: sha512.New},
}

// SHA256 is Algorithms[0].
var SHA256 = Algorithms[0]

// ErrMismatch is returned when a file's content does not match its recorded checksum.
var ErrMismatch = errors.New("checksum mismatch")

// File hashes the file at path.
func File(a Algorithm, path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("hash: %w", err)
	}
	defer f.Close()
	h := a.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Write writes, for every algorithm, the directory's sums file listing names
// (files in dir, sorted) and beside lists the files that also get a
// <name><ext> file of their own. It returns the sha256 of every name.
func Write(dir string, names, beside []string) (map[string]string, error) {
	names = append([]string(nil), names...)
	sort.Strings(names)
	sha := map[string]string{}
	for _, a := range Algorithms {
		var all bytes.Buffer
		digests := map[string]string{}
		for _, n := range names {
			d, err := File(a, filepath.Join(dir, n))
			if err != nil {
				return nil, err
			}
			digests[n] = d
			fmt.Fprintf(&all, "%s  %s\n", d, n)
			if a.SumsFile == SHA256.SumsFile {
				sha[n] = d
			}
		}
		for _, n := range beside {
			d, ok := digests[n]
			if !ok {
				return nil, fmt.Errorf("write %s%s: %s is not among the summed files", n, a.Ext, n)
			}
			line := fmt.Sprintf("%s  %s\n", d, n)
			if err := writeFile(filepath.Join(dir, n+a.Ext), []byte(line)); err != nil {
				return nil, err
			}
		}
		if err := writeFile(filepath.Join(dir, a.SumsFile), all.Bytes()); err != nil {
			return nil, err
		}
	}
	return sha, nil
}

func writeFile(path string, data []byte) error {
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("write checksums: %w", err)
	}
	return nil
}

// Parse reads a coreutils checksum file (text or binary mode markers) into
// name → hex digest. Names must be plain file names in the same directory.
func Parse(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read checksums: %w", err)
	}
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		digest, name, ok := strings.Cut(text, " ")
		name = strings.TrimPrefix(strings.TrimPrefix(name, " "), "*")
		if !ok || name == "" || digest == "" {
			return nil, fmt.Errorf("%s:%d: malformed line %q", path, line, text)
		}
		if _, err := hex.DecodeString(digest); err != nil {
			return nil, fmt.Errorf("%s:%d: digest is not hex: %w", path, line, err)
		}
		if name != filepath.Base(name) || name == "." || name == ".." {
			return nil, fmt.Errorf("%s:%d: %q is not a plain file name", path, line, name)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("%s:%d: %s listed twice", path, line, name)
		}
		out[name] = digest
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no checksums", path)
	}
	return out, nil
}

// Check verifies every algorithm's sums file in dir against the files it
// lists, checks that all sums files list the same names, and that every
// <name><ext> file beside an artifact agrees. It returns the names listed.
func Check(dir string) ([]string, error) {
	var names []string
	for i, a := range Algorithms {
		want, err := Parse(filepath.Join(dir, a.SumsFile))
		if err != nil {
			return nil, err
		}
		var these []string
		for n, d := range want {
			these = append(these, n)
			got, err := File(a, filepath.Join(dir, n))
			if err != nil {
				return nil, err
			}
			if got != d {
				return nil, fmt.Errorf("%s: %s: %w (listed %s, file has %s)", a.SumsFile, filepath.Join(dir, n), ErrMismatch, d, got)
			}
			if err := checkBeside(dir, n, a, d); err != nil {
				return nil, err
			}
		}
		sort.Strings(these)
		if i == 0 {
			names = these
		} else if strings.Join(these, "\n") != strings.Join(names, "\n") {
			return nil, fmt.Errorf("%s and %s in %s list different files", Algorithms[0].SumsFile, a.SumsFile, dir)
		}
	}
	return names, nil
}

// checkBeside checks <name><ext> when it exists.
func checkBeside(dir, name string, a Algorithm, digest string) error {
	p := filepath.Join(dir, name+a.Ext)
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	m, err := Parse(p)
	if err != nil {
		return err
	}
	if len(m) != 1 || m[name] != digest {
		return fmt.Errorf("%s: %w with %s", p, ErrMismatch, a.SumsFile)
	}
	return nil
}
