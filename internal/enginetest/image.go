package enginetest

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// ImageRef is the name the test image is imported under: containerd's full
// reference; Docker shows it as ImageTag.
const (
	ImageRef = "docker.io/library/nokmem-busybox:test"
	ImageTag = "nokmem-busybox:test"
)

// Applets are the busybox applets the image links in /bin.
var Applets = []string{"sh", "sleep", "touch", "cat", "echo", "true", "ls", "ps", "id"}

// WriteImage writes a one-layer image of busybox (Debian's static busybox
// with its Applets in /bin, /etc/passwd and /etc/group for root) to path as
// a tar that both `ctr images import` (OCI image layout: oci-layout,
// index.json, blobs/) and `docker load` (manifest.json, which Docker 20.10
// needs and which names the same blobs) read. The layer is an uncompressed
// tar, so its digest is also its diff ID. Everything is dated at the Unix
// epoch: the same busybox gives the same bytes.
func WriteImage(path, busybox string) error {
	bb, err := os.ReadFile(busybox)
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	var layer bytes.Buffer
	lw := tar.NewWriter(&layer)
	epoch := time.Unix(0, 0)
	add := func(h *tar.Header, data []byte) error {
		h.ModTime, h.Format = epoch, tar.FormatPAX
		if err := lw.WriteHeader(h); err != nil {
			return err
		}
		_, err := lw.Write(data)
		return err
	}
	passwd := []byte("root:x:0:0:root:/root:/bin/sh\n")
	group := []byte("root:x:0:\n")
	type entry struct {
		h    tar.Header
		data []byte
	}
	entries := []entry{
		{tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755}, nil},
		{tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bb))}, bb},
	}
	for _, a := range Applets {
		entries = append(entries, entry{tar.Header{Name: "bin/" + a, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777}, nil})
	}
	for _, d := range []string{"dev/", "etc/", "proc/", "root/", "sys/", "tmp/"} {
		mode := int64(0o755)
		if d == "tmp/" {
			mode = 0o1777
		}
		entries = append(entries, entry{tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: mode}, nil})
	}
	entries = append(entries,
		entry{tar.Header{Name: "etc/passwd", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(passwd))}, passwd},
		entry{tar.Header{Name: "etc/group", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(group))}, group},
	)
	for _, e := range entries {
		h := e.h
		if err := add(&h, e.data); err != nil {
			return fmt.Errorf("image layer: %w", err)
		}
	}
	if err := lw.Close(); err != nil {
		return fmt.Errorf("image layer: %w", err)
	}
	layerDesc := descriptor("application/vnd.oci.image.layer.v1.tar", layer.Bytes())

	config, err := json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"created":      epoch.UTC().Format(time.RFC3339),
		"config":       map[string]any{"Env": []string{"PATH=/bin"}, "Cmd": []string{"/bin/sh"}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{layerDesc.Digest}},
		"history":      []map[string]any{{"created": epoch.UTC().Format(time.RFC3339), "created_by": "nokmem enginetest: Debian busybox-static"}},
	})
	if err != nil {
		return err
	}
	configDesc := descriptor("application/vnd.oci.image.config.v1+json", config)
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        configDesc,
		"layers":        []ociDescriptor{layerDesc},
	})
	if err != nil {
		return err
	}
	manifestDesc := descriptor("application/vnd.oci.image.manifest.v1+json", manifest)
	manifestDesc.Annotations = map[string]string{
		"io.containerd.image.name":          ImageRef,
		"org.opencontainers.image.ref.name": "test",
	}
	index, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.index.v1+json",
		"manifests":     []ociDescriptor{manifestDesc},
	})
	if err != nil {
		return err
	}
	dockerManifest, err := json.Marshal([]map[string]any{{
		"Config":   blobPath(configDesc),
		"RepoTags": []string{ImageTag},
		"Layers":   []string{blobPath(layerDesc)},
	}})
	if err != nil {
		return err
	}

	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	files := []struct {
		name string
		data []byte
	}{
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{"index.json", index},
		{"manifest.json", dockerManifest},
		{blobPath(layerDesc), layer.Bytes()},
		{blobPath(configDesc), config},
		{blobPath(manifestDesc), manifest},
	}
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return err
		}
	}
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(f.data)), ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		return fmt.Errorf("image: %w", err)
	}
	return nil
}

// ociDescriptor is an OCI content descriptor.
type ociDescriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

func descriptor(mediaType string, data []byte) ociDescriptor {
	sum := sha256.Sum256(data)
	return ociDescriptor{MediaType: mediaType, Digest: "sha256:" + hex.EncodeToString(sum[:]), Size: int64(len(data))}
}

func blobPath(d ociDescriptor) string { return "blobs/sha256/" + d.Digest[len("sha256:"):] }
