// Package report writes what verify found and did in the forms other tools
// read: JSON, JUnit XML (for CI), a Prometheus node_exporter textfile (the
// metrics of a detect report: DetectMetrics), and a node-problem-detector
// custom-plugin line (NPD: detect's verdict in one short line). Files are written
// atomically (temporary file in the same directory, fsync, rename), so a
// collector never reads half a report.
package report

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/nokmem/nokmem/internal/atomicfile"
)

// WriteJSON writes v as indented JSON followed by a newline.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// WriteJSONFile writes v as JSON to path atomically.
func WriteJSONFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	return atomicfile.WriteFile(path, append(b, '\n'), 0o644)
}
