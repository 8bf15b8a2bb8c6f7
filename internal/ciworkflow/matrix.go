// Package ciworkflow is what the CI workflows under .github/workflows are
// made from and checked against: the job matrix of the release workflow,
// computed from vendor-pins/matrix.yaml so the version list lives in one
// place (`go tool mage ci:matrix` prints it), and the switch that makes the
// bundle job use the downloaded artifacts instead of building.
package ciworkflow

import (
	"encoding/json"
	"fmt"

	"github.com/nokmem/nokmem/internal/pins"
)

// Targets maps a matrix project to the Mage namespace of its targets
// (`go tool mage <target>:build <version>`, `<target>:checksums <version>`).
var Targets = map[string]string{"kubernetes": "kubelet", "runc": "runc"}

// Job is one build job of the release workflow.
type Job struct {
	Project string `json:"project"`
	Version string `json:"version"`
	Target  string `json:"target"`
}

// Matrix is the build job's strategy.matrix: {"include":[job, ...]}.
type Matrix struct {
	Include []Job `json:"include"`
}

// FromPins lists every buildable version of m as a job, in the matrix
// file's order. A buildable version of a project without Mage targets is an
// error (it could not be built by the workflow).
func FromPins(m *pins.Matrix) (Matrix, error) {
	out := Matrix{Include: []Job{}}
	for _, e := range m.Versions {
		if e.Status != pins.StatusBuildable {
			continue
		}
		t, ok := Targets[e.Project]
		if !ok {
			return Matrix{}, fmt.Errorf("matrix: %s %s is buildable but has no Mage build target", e.Project, e.Version)
		}
		out.Include = append(out.Include, Job{Project: e.Project, Version: e.Version, Target: t})
	}
	return out, nil
}

// JSON is the matrix as one line of JSON, as a step output needs it.
func (m Matrix) JSON() ([]byte, error) {
	return json.Marshal(m)
}

// Load reads the matrix file in pinsDir (validated against its lock files
// by pins.LoadMatrix) and returns its job matrix.
func Load(pinsDir string) (Matrix, error) {
	m, err := pins.LoadMatrix(pinsDir)
	if err != nil {
		return Matrix{}, err
	}
	return FromPins(m)
}
