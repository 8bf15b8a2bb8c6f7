package kubeletnode

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Image references of the two local images. No registry is reachable: the
// images are built here and imported into the runtime.
const (
	PauseImage   = "nokmem.test/pause:1"
	BusyboxImage = "nokmem.test/busybox:1"
)

// busyboxApplets get a symlink to /bin/busybox in the busybox image.
var busyboxApplets = []string{"sh", "sleep", "cat", "echo", "true"}

// BuildPause compiles the kubelet tree's build/pause/pause.c into a static
// binary out (gcc -static: the image has no libc).
func BuildPause(ctx context.Context, pauseC, out string) error {
	cmd := exec.CommandContext(ctx, "gcc", "-Os", "-static", "-DVERSION=nokmem-test", "-o", out, pauseC)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("gcc -static %s: %w: %s", pauseC, err, bytes.TrimSpace(b))
	}
	return nil
}

// file is one regular file or symlink of an image layer.
type file struct {
	name, link string
	data       []byte
}

// WritePauseImage writes the pause image (one layer: /pause) as a
// docker-archive tarball at out.
func WritePauseImage(pause, out string) error {
	data, err := os.ReadFile(pause)
	if err != nil {
		return fmt.Errorf("pause image: %w", err)
	}
	return writeArchive(out, PauseImage, map[string]any{"Entrypoint": []string{"/pause"}}, []file{{name: "pause", data: data}})
}

// WriteBusyboxImage writes the busybox image (one layer: /bin/busybox, the
// static build from Debian's busybox-static, and applet links) as a
// docker-archive tarball at out.
func WriteBusyboxImage(busybox, out string) error {
	data, err := os.ReadFile(busybox)
	if err != nil {
		return fmt.Errorf("busybox image: %w", err)
	}
	files := []file{{name: "bin/busybox", data: data}}
	for _, a := range busyboxApplets {
		files = append(files, file{name: "bin/" + a, link: "busybox"})
	}
	files = append(files, file{name: "tmp/"})
	return writeArchive(out, BusyboxImage, map[string]any{"Cmd": []string{"sh"}}, files)
}

// writeArchive writes a one-layer image in the docker-archive format that
// `ctr images import` reads: manifest.json, the config, layer.tar.
func writeArchive(out, ref string, cfg map[string]any, files []file) error {
	var layer bytes.Buffer
	lw := tar.NewWriter(&layer)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: 0o755, Typeflag: tar.TypeReg, Size: int64(len(f.data))}
		switch {
		case f.link != "":
			h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, f.link, 0
		case f.name[len(f.name)-1] == '/':
			h.Typeflag, h.Mode, h.Size = tar.TypeDir, 0o1777, 0
		}
		if err := lw.WriteHeader(h); err != nil {
			return err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := lw.Write(f.data); err != nil {
				return err
			}
		}
	}
	if err := lw.Close(); err != nil {
		return err
	}
	diff := sha256.Sum256(layer.Bytes())
	config, err := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux", "config": cfg,
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + hex.EncodeToString(diff[:])}},
	})
	if err != nil {
		return err
	}
	cs := sha256.Sum256(config)
	configName := hex.EncodeToString(cs[:]) + ".json"
	manifest, err := json.Marshal([]map[string]any{{"Config": configName, "RepoTags": []string{ref}, "Layers": []string{"layer.tar"}}})
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range []struct {
		name string
		data []byte
	}{{"manifest.json", manifest}, {configName, config}, {"layer.tar", layer.Bytes()}} {
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.data)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := tw.Write(e.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	return os.WriteFile(out, buf.Bytes(), 0o644)
}
