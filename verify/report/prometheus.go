package report

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/nokmem/nokmem/internal/atomicfile"
)

// Metric is one gauge sample of a Prometheus textfile.
type Metric struct {
	Name   string
	Help   string
	Labels map[string]string
	Value  float64
}

// Textfile renders metrics in the Prometheus text exposition format, every
// family as a gauge with its HELP and TYPE lines once, families in the order
// of their first sample.
func Textfile(metrics []Metric) ([]byte, error) {
	var order []string
	fams := map[string][]Metric{}
	for _, m := range metrics {
		if !validName(m.Name) {
			return nil, fmt.Errorf("metric name %q is not valid", m.Name)
		}
		if _, ok := fams[m.Name]; !ok {
			order = append(order, m.Name)
		}
		fams[m.Name] = append(fams[m.Name], m)
	}
	var b strings.Builder
	for _, name := range order {
		ms := fams[name]
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n", name, escapeHelp(ms[0].Help), name)
		for _, m := range ms {
			b.WriteString(name)
			if len(m.Labels) > 0 {
				keys := make([]string, 0, len(m.Labels))
				for k := range m.Labels {
					if !validName(k) || strings.Contains(k, ":") {
						return nil, fmt.Errorf("metric %s: label name %q is not valid", name, k)
					}
					keys = append(keys, k)
				}
				sort.Strings(keys)
				b.WriteByte('{')
				for i, k := range keys {
					if i > 0 {
						b.WriteByte(',')
					}
					fmt.Fprintf(&b, "%s=\"%s\"", k, escapeLabel(m.Labels[k]))
				}
				b.WriteByte('}')
			}
			fmt.Fprintf(&b, " %s\n", formatValue(m.Value))
		}
	}
	return []byte(b.String()), nil
}

// WriteTextfile writes metrics to path atomically, as the node_exporter
// textfile collector requires (path should end in .prom).
func WriteTextfile(path string, metrics []Metric) error {
	b, err := Textfile(metrics)
	if err != nil {
		return fmt.Errorf("textfile %s: %w", path, err)
	}
	return atomicfile.WriteFile(path, b, 0o644)
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		ok := r == '_' || r == ':' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (i > 0 && r >= '0' && r <= '9')
		if !ok {
			return false
		}
	}
	return true
}

func escapeHelp(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}

func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`).Replace(s)
}

func formatValue(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// Bool is 1 for true and 0 for false.
func Bool(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
