package ciworkflow

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/nokmem/nokmem/internal/pins"
)

// root is the repository root, seen from this package's folder.
const root = "../.."

// rawMatrix reads vendor-pins/matrix.yaml without internal/pins, as an
// independent oracle of what is buildable.
type rawMatrix struct {
	Versions []struct {
		Project, Version, Status string
	} `json:"versions"`
}

func readRaw(t *testing.T) rawMatrix {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "vendor-pins", pins.MatrixFile))
	if err != nil {
		t.Fatal(err)
	}
	var m rawMatrix
	if err := yaml.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestMatrixIsTheMatrixFile: the job matrix lists exactly the buildable
// versions of matrix.yaml, in its order, with the Mage namespace of each.
func TestMatrixIsTheMatrixFile(t *testing.T) {
	got, err := Load(filepath.Join(root, "vendor-pins"))
	if err != nil {
		t.Fatal(err)
	}
	var want []Job
	for _, v := range readRaw(t).Versions {
		if v.Status == "buildable" {
			want = append(want, Job{Project: v.Project, Version: v.Version, Target: map[string]string{"kubernetes": "kubelet", "runc": "runc"}[v.Project]})
		}
	}
	if len(want) == 0 {
		t.Fatal("matrix.yaml has no buildable version")
	}
	if !slices.Equal(got.Include, want) {
		t.Fatalf("job matrix\n got %v\nwant %v (the buildable versions of matrix.yaml)", got.Include, want)
	}
	b, err := got.JSON()
	if err != nil {
		t.Fatal(err)
	}
	// The shape the workflow's fromJSON reads (TEAM convention 2), on one line.
	if !strings.HasPrefix(string(b), `{"include":[{"project":"kubernetes","version":"v1.12.4","target":"kubelet"},`) || strings.Contains(string(b), "\n") {
		t.Fatalf("matrix JSON %s: want one line starting {\"include\":[{\"project\":\"kubernetes\",\"version\":\"v1.12.4\",\"target\":\"kubelet\"},", b)
	}
}

// TestMageCIMatrix runs the target the workflow's matrix job runs and
// compares its stdout with the matrix file's jobs.
func TestMageCIMatrix(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the magefiles")
	}
	m, err := Load(filepath.Join(root, "vendor-pins"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := m.JSON()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "tool", "mage", "ci:matrix")
	cmd.Dir = root
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go tool mage ci:matrix: %v", err)
	}
	if string(out) != string(want)+"\n" {
		t.Fatalf("go tool mage ci:matrix printed\n%s\nwant\n%s", out, want)
	}
}

func TestFromPins(t *testing.T) {
	m := &pins.Matrix{Versions: []pins.MatrixEntry{
		{Project: "runc", Version: "v1.0.0-rc6", Status: pins.StatusBuildable},
		{Project: "kubernetes", Version: "v1.12.8", Status: pins.StatusPlanned},
		{Project: "kubernetes", Version: "v1.12.10", Status: pins.StatusUnbuildable},
		{Project: "runc", Version: "v1.0.0-rc95", Status: pins.StatusUnaffected},
		{Project: "kubernetes", Version: "v1.14.10", Status: pins.StatusBuildable},
	}}
	got, err := FromPins(m)
	if err != nil {
		t.Fatal(err)
	}
	want := []Job{{"runc", "v1.0.0-rc6", "runc"}, {"kubernetes", "v1.14.10", "kubelet"}}
	if !slices.Equal(got.Include, want) {
		t.Fatalf("got %v, want %v", got.Include, want)
	}
	empty, err := FromPins(&pins.Matrix{})
	if b, _ := empty.JSON(); err != nil || string(b) != `{"include":[]}` {
		t.Fatalf("empty matrix: %s, %v", b, err)
	}
	m.Versions = append(m.Versions, pins.MatrixEntry{Project: "containerd", Version: "v1.2.0", Status: pins.StatusBuildable})
	if _, err := FromPins(m); err == nil || !strings.Contains(err.Error(), "containerd v1.2.0") {
		t.Fatalf("buildable project without targets: %v, want an error naming it", err)
	}
}

func TestPrebuilt(t *testing.T) {
	for v, want := range map[string]bool{"": false, "0": false, "1": true} {
		if got, err := Prebuilt(v); err != nil || got != want {
			t.Errorf("Prebuilt(%q) = %v, %v; want %v", v, got, err, want)
		}
	}
	if _, err := Prebuilt("true"); err == nil || !strings.Contains(err.Error(), PrebuiltEnv) {
		t.Errorf("Prebuilt(true): %v, want an error naming %s", err, PrebuiltEnv)
	}
}
