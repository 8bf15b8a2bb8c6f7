package binary_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nokmem/nokmem/internal/testenv"
	"github.com/nokmem/nokmem/verify/affected"
	"github.com/nokmem/nokmem/verify/binary"
)

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

// fakeBinary writes a shell script that prints version and returns its path.
func fakeBinary(t *testing.T, dir, name, version string, exit int) string {
	t.Helper()
	p := filepath.Join(dir, name)
	script := "#!/bin/sh\nprintf '%s\\n' '" + version + "'\nexit " + string(rune('0'+exit)) + "\n"
	writeFile(t, p, script, 0o755)
	return p
}

func TestFindBinaries(t *testing.T) {
	testenv.RequireCommand(t, "sh")
	dir := t.TempDir()
	known := fakeBinary(t, dir, "docker-runc", "runc version 1.0.0-rc5 (release build)", 0)
	knownSum, err := binary.FileSHA256(known)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, version string
		exit          int
		want          string
	}{
		// A "+nokmem" version with an unknown sha256 is no nokmem build (identity_test.go).
		{"kubelet", "Kubernetes v1.12.4+nokmem", 0, binary.KindUnknown},
		{"kubelet", "Kubernetes v1.12.4", 0, binary.KindStock},
		{"kubelet", "hello world", 0, binary.KindUnknown},
		{"kubelet", "Kubernetes v1.12.4", 3, binary.KindUnknown},
		{"runc", "runc version 1.0.0-rc5+nokmem", 0, binary.KindUnknown},
		{"runc", "runc version 1.0.0-rc5", 0, binary.KindStock},
	}
	for _, tt := range tests {
		t.Run(tt.name+"/"+tt.version, func(t *testing.T) {
			d := t.TempDir()
			p := fakeBinary(t, d, tt.name, tt.version, tt.exit)
			bins, err := binary.Find(binary.Options{
				SearchDirs: []string{filepath.Join(d, "nothing-here"), d},
				Paths:      map[string]string{"docker-runc": known},
				KnownSums:  map[string]string{knownSum: "docker-runc"},
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(bins) != 2 {
				t.Fatalf("found %d binaries, want 2: %+v", len(bins), bins)
			}
			b := bins[0]
			if b.Path != p || b.Kind != tt.want {
				t.Fatalf("got %+v, want kind %s at %s", b, tt.want, p)
			}
			if dr := bins[1]; dr.Name != "docker-runc" || dr.Kind != binary.KindNokmem || !strings.Contains(dr.Reason, "sha256") {
				t.Fatalf("docker-runc by known checksum: %+v", dr)
			}
		})
	}
}

func TestReadKnownSums(t *testing.T) {
	p := filepath.Join(t.TempDir(), "SHA256SUMS")
	sum := strings.Repeat("ab", 32)
	writeFile(t, p, sum+"  kubelet\n"+strings.Repeat("CD", 32)+" *runc\n", 0o644)
	m, err := binary.ReadKnownSums(p)
	if err != nil || m[sum] != "kubelet" || m[strings.Repeat("cd", 32)] != "runc" {
		t.Fatalf("got %v, %v", m, err)
	}
	writeFile(t, p, "zz kubelet\n", 0o644)
	if _, err := binary.ReadKnownSums(p); err == nil {
		t.Fatal("malformed SHA256SUMS accepted")
	}
}

// TestIdentifyNokmemTag: a stock binary that holds kmem_disabled.go's
// error string was built with -tags nokmem and is no problem, whatever its
// version; the same version without the string is.
func TestIdentifyNokmemTag(t *testing.T) {
	testenv.RequireCommand(t, "sh")
	for _, tagged := range []bool{false, true} {
		p := filepath.Join(t.TempDir(), "runc")
		script := "#!/bin/sh\nprintf 'runc version 1.0.0-rc93\\ncommit: 12644e614e25b05da6fd08a38ffa0cfe1903fdec\\n'\n"
		if tagged {
			// Far from the start, so that it crosses io.Copy's 32 KiB writes.
			script += "# " + strings.Repeat("x", 32*1024-len(script)-10) + "\n# " + affected.KmemDisabledError + "\n"
		}
		writeFile(t, p, script, 0o755)
		b, err := binary.Identify("runc", p, binary.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if b.Upstream == nil || b.Upstream.NokmemTag != tagged || b.Problem() == tagged {
			t.Errorf("tagged %v: %+v problem %v", tagged, b.Upstream, b.Problem())
		}
	}
}
