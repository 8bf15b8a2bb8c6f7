// Package publish puts a build's artifacts into their output folder
// (_output/<project>/<version>/) with checksums, atomically, and decides
// whether a rerun has anything to do.
//
// Publish stages the folder beside its destination and swaps the two with
// one renameat2(RENAME_EXCHANGE), so readers see either the old or the new
// set, and a run that fails before the swap leaves the earlier artifacts as
// they were. A run that is killed leaves its staging folder behind; the next
// run removes it. The folder records a stamp of every build input (lock file,
// patches, toolchain, flags); Current compares it, and the artifacts'
// checksums, so an unchanged rerun does no work.
package publish

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nokmem/nokmem/internal/release/sums"
)

// StampFile is the file in the output folder that records the inputs.
const StampFile = "INPUTS"

// Stamp collects named build inputs; its digest changes when any input does.
type Stamp struct {
	entries map[string]string // name -> sha256 hex of the value
}

// Add records an input by its bytes (a lock file, a patch).
func (s *Stamp) Add(name string, data []byte) {
	if s.entries == nil {
		s.entries = map[string]string{}
	}
	h := sha256.Sum256(data)
	s.entries[name] = hex.EncodeToString(h[:])
}

// AddFile records the content of a file.
func (s *Stamp) AddFile(name, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("stamp input %s: %w", name, err)
	}
	s.Add(name, data)
	return nil
}

// Text is the stamp file's content: one "sha256  name" line per input,
// sorted, then the digest of those lines.
func (s *Stamp) Text() string {
	names := make([]string, 0, len(s.entries))
	for n := range s.entries {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%s  %s\n", s.entries[n], n)
	}
	h := sha256.Sum256([]byte(b.String()))
	fmt.Fprintf(&b, "inputs-digest %s\n", hex.EncodeToString(h[:]))
	return b.String()
}

// Diff names the inputs in which a stamp file's text (as Text writes it)
// differs from s: changed, added or dropped entries, sorted.
func (s *Stamp) Diff(text string) []string {
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		if sum, name, ok := strings.Cut(line, "  "); ok {
			got[name] = sum
		}
	}
	var diff []string
	for name, sum := range s.entries {
		if got[name] != sum {
			diff = append(diff, name)
		}
	}
	for name := range got {
		if _, ok := s.entries[name]; !ok {
			diff = append(diff, name)
		}
	}
	sort.Strings(diff)
	return diff
}

// Current reports whether dest holds artifacts built from exactly these
// inputs, with every checksum file agreeing with the files. A missing folder
// is not an error: it is simply not current.
func Current(dest string, s *Stamp) (bool, error) {
	got, err := os.ReadFile(filepath.Join(dest, StampFile))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read stamp: %w", err)
	}
	if string(got) != s.Text() {
		return false, nil
	}
	if _, err := sums.Check(dest); err != nil {
		if errors.Is(err, sums.ErrMismatch) || errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// Publish copies the files (built artifacts) into a staging folder beside
// dest, writes SHA256SUMS, SHA512SUMS, a .sha256 and .sha512 beside each file
// and the stamp, and then swaps the staging folder with dest. It returns the
// sha256 of every artifact by file name. On any error dest is unchanged.
func Publish(dest string, files []string, s *Stamp) (map[string]string, error) {
	parent := filepath.Dir(dest)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("publish %s: %w", dest, err)
	}
	if err := removeStale(dest); err != nil {
		return nil, fmt.Errorf("publish %s: %w", dest, err)
	}
	staging, err := os.MkdirTemp(parent, fmt.Sprintf("%s%d-", stagingPrefix(dest), os.Getpid()))
	if err != nil {
		return nil, fmt.Errorf("publish %s: %w", dest, err)
	}
	// After a successful swap this holds the previous artifacts; after a
	// failure the half-staged ones. Either way it goes.
	defer os.RemoveAll(staging)
	if err := os.Chmod(staging, 0o755); err != nil {
		return nil, fmt.Errorf("publish %s: %w", dest, err)
	}
	names := make([]string, 0, len(files))
	for _, f := range files {
		name := filepath.Base(f)
		if err := copyFile(f, filepath.Join(staging, name)); err != nil {
			return nil, fmt.Errorf("publish %s: %w", dest, err)
		}
		names = append(names, name)
	}
	sha, err := sums.Write(staging, names, names)
	if err != nil {
		return nil, fmt.Errorf("publish %s: %w", dest, err)
	}
	if err := os.WriteFile(filepath.Join(staging, StampFile), []byte(s.Text()), 0o644); err != nil {
		return nil, fmt.Errorf("publish %s: %w", dest, err)
	}
	if err := Swap(staging, dest); err != nil {
		return nil, fmt.Errorf("publish %s: %w", dest, err)
	}
	return sha, nil
}

// stagingPrefix starts the names of dest's staging folders (hidden siblings
// of dest). The publishing process's pid follows, so that a later run can
// tell a killed run's leftover from a publish still under way.
func stagingPrefix(dest string) string { return "." + filepath.Base(dest) + ".staging-" }

// removeStale removes the staging folders of dest whose publishing process
// no longer exists: a run killed before it could clean up.
func removeStale(dest string) error {
	parent := filepath.Dir(dest)
	entries, err := os.ReadDir(parent)
	if err != nil {
		return err
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), stagingPrefix(dest))
		if !ok || !e.IsDir() {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid <= 0 || !errors.Is(unix.Kill(pid, 0), unix.ESRCH) {
			continue // not ours, or its process is still there
		}
		if err := os.RemoveAll(filepath.Join(parent, e.Name())); err != nil {
			return fmt.Errorf("remove the staging folder of a killed run: %w", err)
		}
	}
	return nil
}

// Swap puts the folder staging at dest: an atomic exchange when dest exists
// (the old folder ends up at staging), a rename when it does not, so a
// reader sees the old folder or the new one, never none or a mix.
func Swap(staging, dest string) error {
	err := unix.Renameat2(unix.AT_FDCWD, staging, unix.AT_FDCWD, dest, unix.RENAME_EXCHANGE)
	if errors.Is(err, unix.ENOENT) {
		if _, serr := os.Lstat(dest); errors.Is(serr, os.ErrNotExist) {
			return os.Rename(staging, dest)
		}
	}
	if err != nil {
		return fmt.Errorf("exchange %s with %s: %w", staging, dest, err)
	}
	return nil
}

// copyFile copies src to dst, keeping the executable bits.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", src)
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, fi.Mode().Perm()|0o444)
	if err != nil {
		return err
	}
	_, cerr := io.Copy(out, in)
	if err := errors.Join(cerr, out.Close()); err != nil {
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	return nil
}

// ErrNotReproduced is returned when a rebuild's checksum differs from the committed one.
var ErrNotReproduced = errors.New("rebuild does not reproduce the committed checksum")

// CheckExpected compares built artifacts' sha256 (name -> hex) with the
// committed checksum file (sha256sum format). Every file listed there must
// have been built with exactly that checksum.
func CheckExpected(expectedFile string, got map[string]string) error {
	want, err := sums.Parse(expectedFile)
	if err != nil {
		return fmt.Errorf("committed checksums: %w", err)
	}
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	sort.Strings(names)
	var errs []error
	for _, n := range names {
		switch g, ok := got[n]; {
		case !ok:
			errs = append(errs, fmt.Errorf("%s: listed in %s but not built", n, expectedFile))
		case g != want[n]:
			errs = append(errs, fmt.Errorf("%s: %w: built sha256 %s, %s says %s (if an input changed on purpose, update that file)",
				n, ErrNotReproduced, g, expectedFile, want[n]))
		}
	}
	return errors.Join(errs...)
}
