//go:build mage

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/mod/semver"

	"github.com/nokmem/nokmem/internal/modfetch"
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

// kmemProofVersionsEnv names the kubelet versions whose trees the kmem proof
// runs on (internal/kmemproof TestKmemProofVersions).
const kmemProofVersionsEnv = "NOKMEM_KMEMPROOF_VERSIONS"

// upstreamTestVersionsEnv names the go.mod-era kubelet versions whose trees
// get the upstream test subset (internal/upstreamtest TestGoModSubset).
const upstreamTestVersionsEnv = "NOKMEM_UPSTREAMTEST_VERSIONS"

// matrixChecks runs the per-version checks of every buildable or locked
// version besides the default pair, printing the time of each: a runc
// version is rebuilt and compared with its committed sha256 (seconds with a
// warm cache); a kubelet lock has every zip (and, for a go.mod lock, every
// go.mod file) checked against its h1, its tree assembled and fixed, and its
// version is returned for the kmem proof (with "runc@<version>" for each
// go.mod-era runc, whose rebuilt tree gets the proof too). It sets the upstream subset's
// version (upstreamTestVersionsEnv, when unset) to the newest go.mod-era
// kubelet. Full kubelet builds stay with `go tool mage matrix`.
func matrixChecks(ctx context.Context) ([]string, error) {
	m, err := pins.LoadMatrix(pinsDir)
	if err != nil {
		return nil, err
	}
	p := newPipeline()
	var kubelets []string
	newestGoMod := ""
	for _, v := range append(m.Buildable(kubeProject), m.Locked(kubeProject)...) {
		if v == kubeVersion {
			continue
		}
		start := time.Now()
		if err := verifyLock(ctx, kubeProject, v); err != nil {
			return nil, fmt.Errorf("matrix check kubelet %s: %w", v, err)
		}
		verified := time.Since(start)
		l, _, err := pipelineTree(ctx, kubeProject, v)
		if err != nil {
			return nil, fmt.Errorf("matrix check kubelet %s: %w", v, err)
		}
		fmt.Printf("matrix check: kubelet %s (%s) h1s verified in %s, tree assembled and fixed in %s\n", v, m.Entry(kubeProject, v).Status,
			verified.Round(time.Second), (time.Since(start) - verified).Round(time.Second))
		kubelets = append(kubelets, v)
		if l.Source.Kind == pins.SourceGoMod && (newestGoMod == "" || semver.Compare(v, newestGoMod) > 0) {
			newestGoMod = v
		}
	}
	if newestGoMod != "" && os.Getenv(upstreamTestVersionsEnv) == "" {
		os.Setenv(upstreamTestVersionsEnv, newestGoMod)
	}
	for _, v := range m.Buildable("runc") {
		if v == runcVersion {
			continue
		}
		start := time.Now()
		if _, err := p.Checksums(ctx, pipeline.Runc, v); err != nil {
			return nil, fmt.Errorf("matrix check runc %s: %w", v, err)
		}
		fmt.Printf("matrix check: runc %s reproduced its committed sha256 in %s\n", v, time.Since(start).Round(time.Second))
		if l, err := pins.Load(pinsDir, "runc", v); err == nil && l.Source.Kind == pins.SourceGoMod && l.Fix.Kind != pins.FixNone {
			kubelets = append(kubelets, "runc@"+v) // the rebuilt tree gets the kmem proof too (a none runc: runcproof's strace proof)
		}
	}
	return kubelets, nil
}

// verifyLock checks every zip of project@version's lock against its h1,
// and for a go.mod lock every go.mod file too (Pins.Verify without output).
func verifyLock(ctx context.Context, project, version string) error {
	l, err := pins.Load(pinsDir, project, version)
	if err != nil {
		return err
	}
	f := &modfetch.Fetcher{}
	if _, err := f.Fetch(ctx, l.Modules()); err != nil {
		return err
	}
	if l.GoMod != nil {
		_, err = f.FetchGoMods(ctx, l.GoMod.GoModFiles())
	}
	return err
}
