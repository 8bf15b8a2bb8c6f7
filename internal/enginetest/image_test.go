package enginetest

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWriteImage reads the image tar back as both engines would: every
// blob's name is its sha256, index.json names the manifest (with the
// containerd image name), the manifest the config and the layer, the
// config's diff ID is the layer's digest, manifest.json (docker load)
// names the same blobs, and the layer holds busybox and its applets. The
// same input gives the same bytes.
func TestWriteImage(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "busybox")
	if err := os.WriteFile(fake, []byte("not really busybox"), 0o755); err != nil {
		t.Fatal(err)
	}
	a, b := filepath.Join(dir, "a.tar"), filepath.Join(dir, "b.tar")
	for _, p := range []string{a, b} {
		if err := WriteImage(p, fake); err != nil {
			t.Fatal(err)
		}
	}
	da, _ := os.ReadFile(a)
	db, _ := os.ReadFile(b)
	if !bytes.Equal(da, db) {
		t.Fatal("two writes of the same image differ")
	}
	files := readTar(t, da)
	for name, data := range files {
		if strings.HasPrefix(name, "blobs/sha256/") && name != "blobs/sha256/" {
			sum := sha256.Sum256(data)
			if hex.EncodeToString(sum[:]) != strings.TrimPrefix(name, "blobs/sha256/") {
				t.Errorf("%s: content does not match its name", name)
			}
		}
	}
	blob := func(digest string) []byte {
		data, ok := files["blobs/sha256/"+strings.TrimPrefix(digest, "sha256:")]
		if !ok {
			t.Fatalf("no blob %s", digest)
		}
		return data
	}
	var index struct{ Manifests []ociDescriptor }
	mustJSON(t, files["index.json"], &index)
	if len(index.Manifests) != 1 || index.Manifests[0].Annotations["io.containerd.image.name"] != ImageRef {
		t.Fatalf("index.json: %+v", index)
	}
	var manifest struct {
		Config ociDescriptor
		Layers []ociDescriptor
	}
	mustJSON(t, blob(index.Manifests[0].Digest), &manifest)
	var config struct {
		Rootfs struct {
			DiffIDs []string `json:"diff_ids"`
		}
	}
	mustJSON(t, blob(manifest.Config.Digest), &config)
	if len(manifest.Layers) != 1 || len(config.Rootfs.DiffIDs) != 1 || config.Rootfs.DiffIDs[0] != manifest.Layers[0].Digest {
		t.Fatalf("manifest %+v, config diff IDs %v", manifest, config.Rootfs.DiffIDs)
	}
	var docker []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	mustJSON(t, files["manifest.json"], &docker)
	if len(docker) != 1 || docker[0].Config != blobPath(manifest.Config) || len(docker[0].Layers) != 1 || docker[0].Layers[0] != blobPath(manifest.Layers[0]) || docker[0].RepoTags[0] != ImageTag {
		t.Fatalf("manifest.json: %+v", docker)
	}
	layer := readTar(t, blob(manifest.Layers[0].Digest))
	if string(layer["bin/busybox"]) != "not really busybox" {
		t.Errorf("layer: bin/busybox is %q", layer["bin/busybox"])
	}
	if _, ok := layer["bin/sh"]; !ok {
		t.Error("layer: no bin/sh")
	}
}

// readTar returns a tar's entries by name (directories and links with no data).
func readTar(t *testing.T, data []byte) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name] = b
	}
}

func mustJSON(t *testing.T, data []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%v: %s", err, data)
	}
}
