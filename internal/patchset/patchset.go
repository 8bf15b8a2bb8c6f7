// Package patchset loads the ordered patch series of a project version
// (patches/<project>/<version>/NNNN-name.patch) and applies it to a source
// tree strictly: every hunk must match at its recorded position, with no
// fuzz and no offset search. A failing hunk is reported by patch file,
// target file and hunk number.
//
// Every patch starts with a header of "Key: value" lines (continuation lines
// are indented) naming what it changes and why, the upstream reference, how
// it differs from upstream and when it can be dropped. A patch without these
// fields is rejected.
package patchset

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/textproto"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/bluekeyes/go-gitdiff/gitdiff"
)

// MarkerPrefix starts every patch-set marker.
const MarkerPrefix = "nokmem."

// RequiredFields are the header fields every patch must carry.
var RequiredFields = []string{"Subject", "Why", "Upstream", "Upstream-Difference", "Drop-When"}

// namePattern is the file name a patch must have: a four-digit sequence number and a short name.
var namePattern = regexp.MustCompile(`^[0-9]{4}-[a-z0-9][a-z0-9.-]*\.patch$`)

// Header is a patch's parsed header.
type Header struct {
	Subject            string
	Why                string
	Upstream           string
	UpstreamDifference string
	DropWhen           string
}

// Patch is one parsed patch file.
type Patch struct {
	// Name is the file name, e.g. "0001-runc-no-kmem-on-apply.patch".
	Name   string
	Header Header
	Files  []*gitdiff.File
	// Bytes is the patch file's content.
	Bytes []byte
}

// Set is a project version's ordered patch series.
type Set struct {
	// Dir is the folder the patches were read from.
	Dir     string
	Patches []*Patch
}

// Load reads every *.patch file in dir, in name order, and parses it. It
// fails on a file name out of the NNNN-name.patch form, a missing header
// field, or a diff go-gitdiff cannot parse. A missing dir is an error: a
// project version without patches has an empty folder.
func Load(dir string) (*Set, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read patch folder: %w", err)
	}
	s := &Set{Dir: dir}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".patch") {
			continue
		}
		if !namePattern.MatchString(e.Name()) {
			return nil, fmt.Errorf("patch %s: name must be NNNN-short-name.patch", filepath.Join(dir, e.Name()))
		}
		p, err := Parse(e.Name(), filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		s.Patches = append(s.Patches, p)
	}
	sort.Slice(s.Patches, func(i, j int) bool { return s.Patches[i].Name < s.Patches[j].Name })
	return s, nil
}

// Parse reads and parses one patch file.
func Parse(name, path string) (*Patch, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("patch %s: %w", name, err)
	}
	files, preamble, err := gitdiff.Parse(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("patch %s: parse diff: %w", name, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("patch %s: contains no file diff", name)
	}
	h, err := parseHeader(preamble)
	if err != nil {
		return nil, fmt.Errorf("patch %s: %w", name, err)
	}
	for _, f := range files {
		if f.IsBinary || f.IsRename || f.IsCopy {
			return nil, fmt.Errorf("patch %s: %s: only text changes are supported (no binary, rename or copy)", name, f.OldName+f.NewName)
		}
	}
	return &Patch{Name: name, Header: h, Files: files, Bytes: data}, nil
}

// parseHeader reads the "Key: value" block at the start of the preamble.
func parseHeader(preamble string) (Header, error) {
	r := textproto.NewReader(bufio.NewReader(strings.NewReader(preamble + "\n\n")))
	mh, err := r.ReadMIMEHeader()
	if err != nil {
		return Header{}, fmt.Errorf("header: %w (want %s lines before the diff)", err, strings.Join(RequiredFields, ", "))
	}
	var missing []string
	for _, k := range RequiredFields {
		if strings.TrimSpace(mh.Get(k)) == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return Header{}, fmt.Errorf("header lacks %s", strings.Join(missing, ", "))
	}
	return Header{
		Subject:            mh.Get("Subject"),
		Why:                mh.Get("Why"),
		Upstream:           mh.Get("Upstream"),
		UpstreamDifference: mh.Get("Upstream-Difference"),
		DropWhen:           mh.Get("Drop-When"),
	}, nil
}

// Digest is the sha256 of the series: every patch's name and bytes, in order.
func (s *Set) Digest() string {
	h := sha256.New()
	for _, p := range s.Patches {
		fmt.Fprintf(h, "%s %d\n", p.Name, len(p.Bytes))
		h.Write(p.Bytes)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Marker is the build-metadata marker for the patch set, stamped into the
// version as v1.12.4+<marker>: "nokmem." and the first 12 hex digits of the
// series digest, so any change to any patch changes the version string.
func (s *Set) Marker() string {
	return MarkerPrefix + s.Digest()[:12]
}

// HunkError is a hunk that does not apply.
type HunkError struct {
	Patch string // patch file name
	File  string // target file, relative to the tree
	Hunk  int    // one-based hunk (fragment) number in that file's diff
	// Line is the one-based line in the target file where the mismatch was found (0 if unknown).
	Line int64
	Err  error
}

func (e *HunkError) Error() string {
	loc := ""
	if e.Line > 0 {
		loc = fmt.Sprintf(" (target line %d)", e.Line)
	}
	return fmt.Sprintf("patch %s: file %s: hunk %d does not apply%s: %v", e.Patch, e.File, e.Hunk, loc, e.Err)
}

func (e *HunkError) Unwrap() error { return e.Err }

// State says whether a tree carries the series.
type State int

const (
	// Unpatched: every patch applies forward.
	Unpatched State = iota
	// Patched: every patch applies in reverse, so the tree already carries the series.
	Patched
)

// Result computes, in memory, the content of every file the series touches
// after applying it (reverse=false) or removing it (reverse=true) on the
// tree at root. A nil value means the file is deleted. Nothing is written.
func (s *Set) Result(root string, reverse bool) (map[string][]byte, error) {
	content := map[string][]byte{}
	patches := s.Patches
	if reverse {
		patches = make([]*Patch, len(s.Patches))
		for i, p := range s.Patches {
			patches[len(patches)-1-i] = p
		}
	}
	for _, p := range patches {
		for _, f := range p.Files {
			if reverse {
				f = reverseFile(f)
			}
			if err := applyFile(root, p.Name, f, content); err != nil {
				return nil, err
			}
		}
	}
	return content, nil
}

// Status tells whether the tree at root is unpatched or already carries the
// whole series. A tree that is neither (a hunk fails both ways) returns the
// forward error, naming patch, file and hunk.
func (s *Set) Status(root string) (State, error) {
	_, fwdErr := s.Result(root, false)
	if fwdErr == nil {
		return Unpatched, nil
	}
	if _, err := s.Result(root, true); err == nil {
		return Patched, nil
	}
	return Unpatched, fwdErr
}

// Apply applies the series to the tree at root. All patches are applied in
// memory first, so a failing hunk leaves the tree untouched; then every
// changed file is replaced through a temporary file and a rename. A tree that
// already carries the series is left as it is (applied=false).
func (s *Set) Apply(root string) (applied bool, err error) {
	st, err := s.Status(root)
	if err != nil {
		return false, err
	}
	if st == Patched {
		return false, nil
	}
	content, err := s.Result(root, false)
	if err != nil {
		return false, err
	}
	return true, write(root, content)
}

// write stores the computed contents under root.
func write(root string, content map[string][]byte) error {
	names := make([]string, 0, len(content))
	for n := range content {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		path := filepath.Join(root, filepath.FromSlash(n))
		data := content[n]
		if data == nil {
			if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("remove %s: %w", path, err)
			}
			continue
		}
		if err := writeFile(path, data); err != nil {
			return err
		}
	}
	return nil
}

// writeFile replaces path atomically, keeping the mode of an existing file.
func writeFile(path string, data []byte) error {
	mode := os.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm() | 0o200
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create folder for %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".patch-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr, os.Chmod(tmp.Name(), mode)); err != nil {
		return errors.Join(fmt.Errorf("write %s: %w", path, err), os.Remove(tmp.Name()))
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return errors.Join(fmt.Errorf("replace %s: %w", path, err), os.Remove(tmp.Name()))
	}
	return nil
}

// applyFile applies one file diff on top of content (falling back to the tree).
func applyFile(root, patch string, f *gitdiff.File, content map[string][]byte) error {
	target := f.NewName
	if f.IsDelete {
		target = f.OldName
	}
	src, err := source(root, f, content)
	if err != nil {
		return &HunkError{Patch: patch, File: target, Hunk: 1, Err: err}
	}
	var out bytes.Buffer
	if err := gitdiff.Apply(&out, bytes.NewReader(src), f); err != nil {
		he := &HunkError{Patch: patch, File: target, Hunk: 1, Err: err}
		var ae *gitdiff.ApplyError
		if errors.As(err, &ae) {
			he.Line = ae.Line
			if ae.Fragment > 0 {
				he.Hunk = ae.Fragment
			}
		}
		return he
	}
	if f.IsDelete {
		content[target] = nil
		return nil
	}
	content[target] = out.Bytes()
	return nil
}

// source returns the content a file diff applies to: the result of an earlier
// patch in the series, or else the file in the tree. A new file must not exist yet.
func source(root string, f *gitdiff.File, content map[string][]byte) ([]byte, error) {
	name := f.OldName
	if f.IsNew {
		name = f.NewName
	}
	data, inMem := content[name]
	if !inMem {
		var err error
		data, err = os.ReadFile(filepath.Join(root, filepath.FromSlash(name)))
		switch {
		case errors.Is(err, os.ErrNotExist):
			data = nil
		case err != nil:
			return nil, err
		}
	}
	if f.IsNew {
		if data != nil {
			return nil, errors.New("new file already exists")
		}
		return nil, nil
	}
	if data == nil {
		return nil, fmt.Errorf("%s: %w", name, os.ErrNotExist)
	}
	return data, nil
}
