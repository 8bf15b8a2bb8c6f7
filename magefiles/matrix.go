//go:build mage

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nokmem/nokmem/internal/pins"
	"github.com/nokmem/nokmem/internal/pipeline"
)

// Matrix builds every buildable version of vendor-pins/matrix.yaml (each a
// no-op when its inputs are unchanged) and prints one line per version:
// time, binary sizes and sha256.
func Matrix(ctx context.Context) error {
	m, err := pins.LoadMatrix(pinsDir)
	if err != nil {
		return err
	}
	p := newPipeline()
	var rows []string
	for _, proj := range []pipeline.Project{pipeline.Kubelet, pipeline.Runc} {
		for _, v := range m.Buildable(proj.Name) {
			start := time.Now()
			res, err := p.Build(ctx, proj, v)
			if err != nil {
				return fmt.Errorf("matrix: %w", err)
			}
			for name, sha := range res.SHA256 {
				fi, err := os.Stat(filepath.Join(res.Output, name))
				if err != nil {
					return err
				}
				rows = append(rows, fmt.Sprintf("%-10s %-42s %-8s %8s %11d B  %s", proj.Name, v, m.Entry(proj.Name, v).Fix, time.Since(start).Round(time.Second), fi.Size(), sha))
			}
		}
	}
	for _, r := range rows {
		fmt.Println(r)
	}
	return nil
}
