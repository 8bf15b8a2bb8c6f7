// Package stepstamp lets a build step that runs after the binaries (release
// sets, verify, bundle, RPMs, yum repository) skip when nothing it reads or
// writes changed. A step's record holds its input stamp (publish.Stamp: the
// bytes of small inputs, the identity of large ones, the records of the
// steps before it) and the identity of every output file: size, mode,
// modification time and inode. Check compares both with what is there now,
// without hashing a large file; Record writes the record after the step
// succeeded. Publishing by rename or exchange gives every new file a new
// inode, so a rebuilt or replaced output never matches an old record.
package stepstamp

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/nokmem/nokmem/internal/publish"
)

// Step is one build step's record.
type Step struct {
	Name    string         // the step, for messages
	File    string         // where the record is kept
	Inputs  *publish.Stamp // everything the step's result depends on
	Outputs []string       // files or folders (walked) the step writes
}

const outputPrefix = "output "

// Check reports whether the record at s.File was written for the same
// inputs and every output is still the file the step wrote. When it is
// not, why says what differs (changed inputs, a missing or changed output,
// no record). Only an unreadable record is an error.
func (s Step) Check() (upToDate bool, why string, err error) {
	data, err := os.ReadFile(s.File)
	if errors.Is(err, os.ErrNotExist) {
		return false, "no record of an earlier run", nil
	}
	if err != nil {
		return false, "", fmt.Errorf("%s: read its record: %w", s.Name, err)
	}
	in, outs, found := strings.Cut(string(data), "\n"+outputPrefix)
	if found {
		in += "\n"
	}
	if in != s.Inputs.Text() {
		if d := s.Inputs.Diff(in); len(d) > 0 {
			return false, "inputs changed: " + strings.Join(d, ", "), nil
		}
		return false, "inputs changed", nil
	}
	want := map[string]string{}
	if outs != "" {
		for _, line := range strings.Split(strings.TrimSuffix(outputPrefix+outs, "\n"), "\n") {
			path, id, ok := strings.Cut(strings.TrimPrefix(line, outputPrefix), "\t")
			if !ok {
				return false, "record unreadable", nil
			}
			want[path] = id
		}
	}
	got, err := s.outputs()
	if err != nil {
		return false, "an output is missing: " + err.Error(), nil
	}
	for path, id := range got {
		if w, ok := want[path]; !ok {
			return false, "new output " + path, nil
		} else if w != id {
			return false, "output changed: " + path, nil
		}
	}
	for path := range want {
		if _, ok := got[path]; !ok {
			return false, "output missing: " + path, nil
		}
	}
	if len(got) == 0 {
		return false, "no outputs", nil
	}
	return true, "", nil
}

// Record writes the record of a successful run: the inputs and the
// identity of every output as it is now.
func (s Step) Record() error {
	got, err := s.outputs()
	if err != nil {
		return fmt.Errorf("%s: record its outputs: %w", s.Name, err)
	}
	paths := make([]string, 0, len(got))
	for p := range got {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var b strings.Builder
	b.WriteString(s.Inputs.Text())
	for _, p := range paths {
		fmt.Fprintf(&b, "%s%s\t%s\n", outputPrefix, p, got[p])
	}
	if err := os.MkdirAll(filepath.Dir(s.File), 0o755); err != nil {
		return err
	}
	tmp := s.File + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, s.File)
}

// Forget removes the record: a run that starts and fails must not leave
// an earlier record behind that a later run could take for its own.
func (s Step) Forget() error {
	if err := os.Remove(s.File); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s: remove its record: %w", s.Name, err)
	}
	return nil
}

// outputs returns the identity of every output file by path.
func (s Step) outputs() (map[string]string, error) {
	got := map[string]string{}
	for _, root := range s.Outputs {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				return nil
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			got[path] = Identity(fi)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return got, nil
}

// Identity is what tells one version of a file from another without
// reading it: size, mode, modification time (ns) and inode.
func Identity(fi fs.FileInfo) string {
	var ino uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = st.Ino
	}
	return fmt.Sprintf("size=%d mode=%s mtime=%d ino=%d", fi.Size(), fi.Mode(), fi.ModTime().UnixNano(), ino)
}

// AddFileIdentity records a large input by its identity (see Identity)
// rather than by its bytes.
func AddFileIdentity(s *publish.Stamp, name, path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("stamp input %s: %w", name, err)
	}
	s.Add(name, []byte(Identity(fi)))
	return nil
}

// AddRecord records the record of an earlier step as an input, so that a
// step reruns whenever a step it builds on did or its outputs changed.
func AddRecord(s *publish.Stamp, name, file string) error {
	return s.AddFile(name, file)
}
