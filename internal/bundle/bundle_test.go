package bundle_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nokmem/nokmem/internal/bundle"
	"github.com/nokmem/nokmem/internal/bundle/bundletest"
	"github.com/nokmem/nokmem/internal/release/sign"
	"github.com/nokmem/nokmem/internal/release/sums"
	"github.com/nokmem/nokmem/internal/testenv"
)

const name = "nokmem-v1.12.4-v1.0.0-rc5+nokmem.test"

func TestAssembleVerify(t *testing.T) {
	f := bundletest.Make(t, name, "", "")
	m, err := bundle.Verify(f.Dir, f.Pub)
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != name || len(m.Binaries) != 3 {
		t.Fatalf("manifest %+v", m)
	}
	r := m.Binary("runc")
	if r == nil || strings.Join(r.Replaces, ",") != "runc,docker-runc" || r.SHA256 != sha(bundletest.Runc) {
		t.Errorf("runc entry %+v", r)
	}
	entries, _ := os.ReadDir(f.Dir)
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	want := "SHA256SUMS SHA256SUMS.minisig SHA512SUMS kubelet kubelet.provenance.intoto.json kubelet.sbom.spdx.json manifest.json runc runc.provenance.intoto.json runc.sbom.spdx.json verify verify.provenance.intoto.json verify.sbom.spdx.json"
	if strings.Join(got, " ") != want {
		t.Errorf("bundle files\n%s\nwant\n%s", strings.Join(got, " "), want)
	}
}

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return string(bytesHex(h[:]))
}

func bytesHex(b []byte) []byte {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return out
}

// TestVerifyRejects: each bad bundle fails with a message naming the cause.
// TestAssembleSignsFiles: a bundle file (the vulnerability account) is
// listed and signed like the binaries: an edit to it fails Verify, and a
// file that would shadow the manifest is refused.
func TestAssembleSignsFiles(t *testing.T) {
	f := bundletest.Make(t, name, "", "", bundle.File{Name: "VULNERABILITIES.json", Data: []byte("{}\n")})
	if _, err := bundle.Verify(f.Dir, f.Pub); err != nil {
		t.Fatal(err)
	}
	listed, err := sums.Parse(filepath.Join(f.Dir, sums.SHA256.SumsFile))
	if err != nil || listed["VULNERABILITIES.json"] == "" {
		t.Fatalf("VULNERABILITIES.json not in SHA256SUMS: %v %v", listed, err)
	}
	if err := os.WriteFile(filepath.Join(f.Dir, "VULNERABILITIES.json"), []byte("{\"edited\": true}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := bundle.Verify(f.Dir, f.Pub); err == nil {
		t.Fatal("an edited VULNERABILITIES.json verifies")
	}
	tmp := t.TempDir()
	if _, err := bundle.Assemble(filepath.Join(tmp, "b"), name, nil, f.Key, f.Pub, false, bundle.File{Name: bundle.ManifestFile, Data: []byte("{}")}); err == nil || !strings.Contains(err.Error(), "clashes") {
		t.Fatalf("a file named like the manifest: %v", err)
	}
}

func TestVerifyRejects(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(t *testing.T, f *bundletest.Fixture) (pub string)
		want   string
	}{
		{"wrong key", func(t *testing.T, f *bundletest.Fixture) string {
			other := bundletest.Make(t, name, "", "")
			return other.Pub
		}, "signature does not verify"},
		{"missing key", func(t *testing.T, f *bundletest.Fixture) string { return filepath.Join(t.TempDir(), "none.pub") }, "none.pub"},
		{"missing signature", func(t *testing.T, f *bundletest.Fixture) string {
			must(t, os.Remove(filepath.Join(f.Dir, "SHA256SUMS.minisig")))
			return f.Pub
		}, "SHA256SUMS.minisig"},
		{"tampered binary re-summed", func(t *testing.T, f *bundletest.Fixture) string {
			must(t, os.WriteFile(filepath.Join(f.Dir, "kubelet"), []byte(bundletest.Kubelet+"# evil\n"), 0o755))
			_, err := sums.Write(f.Dir, []string{"kubelet", "kubelet.provenance.intoto.json", "kubelet.sbom.spdx.json", "manifest.json", "runc", "runc.provenance.intoto.json", "runc.sbom.spdx.json", "verify", "verify.provenance.intoto.json", "verify.sbom.spdx.json"}, nil)
			must(t, err)
			return f.Pub
		}, "signature does not verify"},
		{"tampered binary", func(t *testing.T, f *bundletest.Fixture) string {
			must(t, os.WriteFile(filepath.Join(f.Dir, "runc"), []byte("evil"), 0o755))
			return f.Pub
		}, "runc: checksum mismatch"},
		{"extra file", func(t *testing.T, f *bundletest.Fixture) string {
			must(t, os.WriteFile(filepath.Join(f.Dir, "docker-runc"), []byte("x"), 0o755))
			return f.Pub
		}, "docker-runc: file not covered"},
		{"extra folder", func(t *testing.T, f *bundletest.Fixture) string {
			must(t, os.Mkdir(filepath.Join(f.Dir, "more"), 0o755))
			return f.Pub
		}, "more is not a regular file"},
		{"signed but manifest lies", func(t *testing.T, f *bundletest.Fixture) string {
			p := filepath.Join(f.Dir, "manifest.json")
			b, _ := os.ReadFile(p)
			b = bytes.Replace(b, []byte(sha(bundletest.Runc)), []byte(sha("other")), 1)
			must(t, os.WriteFile(p, b, 0o644))
			resign(t, f)
			return f.Pub
		}, "runc: bundle manifest does not match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := bundletest.Make(t, name, "", "")
			pub := tt.mutate(t, f)
			_, err := bundle.Verify(f.Dir, pub)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Verify: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// resign rewrites the sums and the signature over the current files, as a
// holder of the key could.
func resign(t *testing.T, f *bundletest.Fixture) {
	t.Helper()
	listed, err := sums.Parse(filepath.Join(f.Dir, "SHA256SUMS"))
	must(t, err)
	var names []string
	for n := range listed {
		names = append(names, n)
	}
	_, err = sums.Write(f.Dir, names, nil)
	must(t, err)
	must(t, sign.File(filepath.Join(f.Dir, "SHA256SUMS"), f.Key))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestPackReproducibleAndUnpack(t *testing.T) {
	f := bundletest.Make(t, name, "", "")
	mtime := time.Date(2026, 11, 22, 20, 18, 35, 0, time.UTC)
	a, b := filepath.Join(t.TempDir(), "a.tar.gz"), filepath.Join(t.TempDir(), "b.tar.gz")
	must(t, bundle.Pack(f.Dir, a, mtime))
	// A copy of the folder with other file times and modes of its own gives the same bytes.
	cp := filepath.Join(t.TempDir(), name)
	must(t, os.Mkdir(cp, 0o700))
	entries, _ := os.ReadDir(f.Dir)
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(f.Dir, e.Name()))
		must(t, err)
		fi, _ := e.Info()
		must(t, os.WriteFile(filepath.Join(cp, e.Name()), data, fi.Mode()&0o700))
	}
	must(t, bundle.Pack(cp, b, mtime))
	ab, _ := os.ReadFile(a)
	bb, _ := os.ReadFile(b)
	if !bytes.Equal(ab, bb) {
		t.Fatal("two packs of the same bundle differ")
	}
	// Header fields.
	zr, err := gzip.NewReader(bytes.NewReader(ab))
	must(t, err)
	if zr.Name != "" || !zr.ModTime.IsZero() {
		t.Errorf("gzip header name %q mtime %v", zr.Name, zr.ModTime)
	}
	tr := tar.NewReader(zr)
	var names []string
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || !h.ModTime.Equal(mtime) {
			t.Errorf("%s: uid %d gid %d uname %q mtime %v", h.Name, h.Uid, h.Gid, h.Uname, h.ModTime)
		}
		names = append(names, h.Name)
	}
	if len(names) != 14 || names[0] != name+"/" || names[1] != name+"/SHA256SUMS" || names[13] != name+"/verify.sbom.spdx.json" {
		t.Errorf("entries %v", names)
	}

	dir, err := bundle.Unpack(a, t.TempDir())
	must(t, err)
	if filepath.Base(dir) != name {
		t.Errorf("unpacked into %s", dir)
	}
	if _, err := bundle.Verify(dir, f.Pub); err != nil {
		t.Errorf("unpacked bundle: %v", err)
	}
}

// TestUnpackRejects: unsafe or broken tarballs fail and leave nothing behind.
func TestUnpackRejects(t *testing.T) {
	top := name + "/"
	reg := func(n, body string) tarEntry {
		return tarEntry{tar.Header{Name: n, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))}, body}
	}
	tests := []struct {
		name    string
		entries []tarEntry
		cut     int // bytes to cut from the end of the tarball
		want    error
		msg     string
	}{
		{"dot dot", []tarEntry{{tar.Header{Name: top, Typeflag: tar.TypeDir, Mode: 0o755}, ""}, reg(top+"../evil", "x")}, 0, bundle.ErrUnsafeEntry, `../evil": path element ".."`},
		{"absolute", []tarEntry{reg("/etc/evil", "x")}, 0, bundle.ErrUnsafeEntry, "absolute path"},
		{"symlink", []tarEntry{{tar.Header{Name: top, Typeflag: tar.TypeDir, Mode: 0o755}, ""}, {tar.Header{Name: top + "kubelet", Typeflag: tar.TypeSymlink, Linkname: "/usr/bin/kubelet"}, ""}}, 0, bundle.ErrUnsafeEntry, "kubelet"},
		{"hard link", []tarEntry{{tar.Header{Name: top, Typeflag: tar.TypeDir, Mode: 0o755}, ""}, {tar.Header{Name: top + "runc", Typeflag: tar.TypeLink, Linkname: "/etc/shadow"}, ""}}, 0, bundle.ErrUnsafeEntry, "runc"},
		{"nested folder", []tarEntry{{tar.Header{Name: top, Typeflag: tar.TypeDir, Mode: 0o755}, ""}, {tar.Header{Name: top + "sub/", Typeflag: tar.TypeDir, Mode: 0o755}, ""}}, 0, bundle.ErrUnsafeEntry, "sub"},
		{"file outside the folder", []tarEntry{{tar.Header{Name: top, Typeflag: tar.TypeDir, Mode: 0o755}, ""}, reg("kubelet", "x")}, 0, bundle.ErrUnsafeEntry, "kubelet"},
		{"truncated", []tarEntry{{tar.Header{Name: top, Typeflag: tar.TypeDir, Mode: 0o755}, ""}, reg(top+"kubelet", strings.Repeat("k", 100000))}, 100, bundle.ErrTruncated, "truncated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tgz := writeTar(t, tt.entries, tt.cut)
			parent := t.TempDir()
			dir, err := bundle.Unpack(tgz, parent)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Unpack: %v, want %v naming %q", err, tt.want, tt.msg)
			}
			if left, _ := os.ReadDir(parent); len(left) != 0 || dir != "" {
				t.Errorf("left behind %v (dir %q)", left, dir)
			}
		})
	}
	t.Run("real bundle truncated", func(t *testing.T) {
		f := bundletest.Make(t, name, "", "")
		tgz := filepath.Join(t.TempDir(), "b.tar.gz")
		must(t, bundle.Pack(f.Dir, tgz, time.Unix(0, 0)))
		data, _ := os.ReadFile(tgz)
		for _, cut := range []int{1, 8, len(data) / 2} {
			must(t, os.WriteFile(tgz, data[:len(data)-cut], 0o644))
			parent := t.TempDir()
			if _, err := bundle.Unpack(tgz, parent); !errors.Is(err, bundle.ErrTruncated) {
				t.Errorf("cut %d bytes: %v, want ErrTruncated", cut, err)
			}
			if left, _ := os.ReadDir(parent); len(left) != 0 {
				t.Errorf("cut %d: left %v", cut, left)
			}
		}
	})
}

type tarEntry struct {
	h    tar.Header
	body string
}

func writeTar(t *testing.T, entries []tarEntry, cut int) string {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		h := e.h
		must(t, tw.WriteHeader(&h))
		if e.body != "" {
			_, err := tw.Write([]byte(e.body))
			must(t, err)
		}
	}
	must(t, tw.Close())
	must(t, zw.Close())
	p := filepath.Join(t.TempDir(), "t.tar.gz")
	must(t, os.WriteFile(p, buf.Bytes()[:buf.Len()-cut], 0o644))
	return p
}

// smallFS mounts a tmpfs of size bytes (read-only when ro) on a fresh
// directory and unmounts it in cleanup.
func smallFS(t *testing.T, size int, ro bool) string {
	t.Helper()
	testenv.RequireRoot(t)
	mount := testenv.RequireCommand(t, "mount")
	dir := t.TempDir()
	opts := fmt.Sprintf("size=%d", size)
	if ro {
		opts += ",ro"
	}
	if out, err := exec.Command(mount, "-t", "tmpfs", "-o", opts, "nokmem-test", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// TestUnpackNamesTheDisk is the issue's "a full --tmp-dir is reported as
// tarball truncated or corrupt": a full and a read-only file system under
// the target fail with ENOSPC and EROFS, never ErrTruncated, and leave
// nothing behind.
func TestUnpackNamesTheDisk(t *testing.T) {
	big := strings.Repeat("#!/bin/sh\n", 1<<17) // 1.3 MB, compresses well
	f := bundletest.Make(t, name, big, "")
	tgz := filepath.Join(t.TempDir(), "b.tar.gz")
	must(t, bundle.Pack(f.Dir, tgz, time.Unix(0, 0)))
	for _, tt := range []struct {
		name  string
		ro    bool
		errno syscall.Errno
		want  string
	}{
		{"full", false, syscall.ENOSPC, "no space left on device"},
		{"read-only", true, syscall.EROFS, "read-only file system"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			parent := smallFS(t, 256<<10, tt.ro)
			_, err := bundle.Unpack(tgz, parent)
			if !errors.Is(err, tt.errno) || errors.Is(err, bundle.ErrTruncated) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), parent) {
				t.Fatalf("Unpack into a %s file system: %v; want %v naming %s, not %v", tt.name, err, tt.errno, parent, bundle.ErrTruncated)
			}
			if ents, _ := os.ReadDir(parent); len(ents) != 0 {
				t.Errorf("left behind: %v", ents)
			}
		})
	}
}
