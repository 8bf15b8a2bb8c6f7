package bundle

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/nokmem/nokmem/internal/atomicfile"
)

// TarExt is the bundle tarball's extension.
const TarExt = ".tar.gz"

// Pack writes the folder dir as a reproducible gzip'd tarball at out: one
// top folder named after dir, entries sorted by name, uid/gid 0 without
// names, mode 0755 for executables and 0644 otherwise, every mtime set to
// mtime, and a gzip header without name or time. The same folder and mtime
// always give the same bytes. The file is written atomically.
func Pack(dir, out string, mtime time.Time) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("pack: %w", err)
	}
	var names []string
	for _, e := range entries {
		if !e.Type().IsRegular() {
			return fmt.Errorf("pack %s: %s is not a regular file", dir, e.Name())
		}
		names = append(names, e.Name())
	}
	sort.Strings(names)
	top := filepath.Base(dir)
	mtime = mtime.UTC().Truncate(time.Second)
	return atomicfile.Write(out, 0o644, atomicfile.KeepOwner, func(w io.Writer) error {
		gz, err := gzip.NewWriterLevel(w, gzip.DefaultCompression)
		if err != nil {
			return err
		}
		tw := tar.NewWriter(gz)
		hdr := func(name string, typ byte, mode, size int64) *tar.Header {
			return &tar.Header{Name: name, Typeflag: typ, Mode: mode, Size: size, ModTime: mtime, Format: tar.FormatUSTAR}
		}
		if err := tw.WriteHeader(hdr(top+"/", tar.TypeDir, 0o755, 0)); err != nil {
			return err
		}
		for _, n := range names {
			p := filepath.Join(dir, n)
			fi, err := os.Stat(p)
			if err != nil {
				return err
			}
			mode := int64(0o644)
			if fi.Mode()&0o111 != 0 {
				mode = 0o755
			}
			if err := tw.WriteHeader(hdr(top+"/"+n, tar.TypeReg, mode, fi.Size())); err != nil {
				return err
			}
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			if err != nil {
				return fmt.Errorf("pack %s: %w", p, err)
			}
		}
		if err := tw.Close(); err != nil {
			return err
		}
		return gz.Close()
	})
}

// ErrUnsafeEntry is returned by Unpack for an entry that is not a plain
// file or the top folder: a path with "..", an absolute path, a link, a
// device, a second top folder.
var ErrUnsafeEntry = errors.New("unsafe tarball entry")

// ErrTruncated is returned by Unpack for a tarball that ends early.
var ErrTruncated = errors.New("tarball truncated or corrupt")

// maxFileSize bounds one entry (the kubelet is about 140 MB).
const maxFileSize = 1 << 30

// Unpack extracts the bundle tarball at tarball into a new folder under
// parent and returns the bundle folder (parent/<top folder>). Only regular
// files directly inside one top folder are accepted; anything else fails
// with ErrUnsafeEntry and a truncated or corrupt archive with ErrTruncated;
// a failed write under parent (a full or read-only file system) fails with
// the write's error (syscall.ENOSPC, syscall.EROFS), never ErrTruncated.
// Then nothing is left under parent.
func Unpack(tarball, parent string) (dir string, err error) {
	f, err := os.Open(tarball)
	if err != nil {
		return "", fmt.Errorf("unpack: %w", err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return "", fmt.Errorf("unpack %s: %w: %w", tarball, ErrTruncated, err)
	}
	tr := tar.NewReader(gz)
	top := ""
	defer func() {
		if err != nil && dir != "" {
			os.RemoveAll(dir)
			dir = ""
		}
	}()
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return dir, fmt.Errorf("unpack %s: %w: %w", tarball, ErrTruncated, err)
		}
		name := h.Name
		bad := func(why string) error {
			return fmt.Errorf("unpack %s: entry %q: %s: %w", tarball, name, why, ErrUnsafeEntry)
		}
		if strings.HasPrefix(name, "/") || filepath.IsAbs(name) {
			return dir, bad("absolute path")
		}
		for _, part := range strings.Split(strings.TrimSuffix(name, "/"), "/") {
			if part == ".." || part == "." || part == "" {
				return dir, bad("path element " + fmt.Sprintf("%q", part))
			}
		}
		clean := path.Clean(name)
		switch h.Typeflag {
		case tar.TypeDir:
			if strings.Contains(clean, "/") || top != "" {
				return dir, bad("a folder other than the one top folder")
			}
			if !strings.HasPrefix(clean, NamePrefix) {
				return dir, bad("top folder is not named " + NamePrefix + "…")
			}
			top = clean
			dir = filepath.Join(parent, top)
			if err := os.Mkdir(dir, 0o755); err != nil {
				dir = "" // not ours, or not made: never remove it
				return "", fmt.Errorf("unpack %s into %s: %w", tarball, parent, err)
			}
		case tar.TypeReg:
			d, base := path.Split(clean)
			if top == "" || d != top+"/" {
				return dir, bad("not directly inside the top folder")
			}
			if h.Size < 0 || h.Size > maxFileSize {
				return dir, bad(fmt.Sprintf("size %d", h.Size))
			}
			mode := os.FileMode(0o644)
			if h.Mode&0o111 != 0 {
				mode = 0o755
			}
			out, err := os.OpenFile(filepath.Join(dir, base), os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
			if err != nil {
				return dir, fmt.Errorf("unpack %s: %w", tarball, err)
			}
			w := &writeErr{w: out}
			n, err := io.Copy(w, tr)
			cerr := out.Close()
			if w.err == nil && err == nil {
				w.err = cerr
			}
			if w.err != nil {
				// The disk, not the tarball: a full or read-only file
				// system under parent.
				return dir, fmt.Errorf("unpack %s into %s: writing %s: %w", tarball, parent, name, w.err)
			}
			if err != nil || n != h.Size {
				return dir, fmt.Errorf("unpack %s: %s: %w: %w", tarball, name, ErrTruncated, err)
			}
		default:
			return dir, bad(fmt.Sprintf("type %q (only regular files and the top folder)", h.Typeflag))
		}
	}
	// Read to the end of the gzip stream so that its checksum is checked.
	if _, err := io.Copy(io.Discard, gz); err != nil {
		return dir, fmt.Errorf("unpack %s: %w: %w", tarball, ErrTruncated, err)
	}
	if top == "" {
		return dir, fmt.Errorf("unpack %s: no top folder: %w", tarball, ErrUnsafeEntry)
	}
	return dir, nil
}

// writeErr remembers the first error of its writer, so that Unpack tells
// a failed write (ENOSPC, EROFS, EIO under the target) from a short read of
// the tarball.
type writeErr struct {
	w   io.Writer
	err error
}

func (w *writeErr) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	if err != nil && w.err == nil {
		w.err = err
	}
	return n, err
}
