package kubeletnode

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/nokmem/nokmem/internal/bundle"
)

// Artifacts are the inputs of a node test, all produced by the pipeline
// (`go tool mage build` and the e2e target's stock build), under Root.
type Artifacts struct {
	Root string
	// Bundle is the newest _output/bundle/nokmem-*.tar.gz, Pub its key.
	Bundle, Pub string
	// StockKubelet is the same kubelet tree built without the kmem patch.
	StockKubelet string
	// StockRunc is the default runc built without its patches, "" when the
	// bundle's runc has no such build.
	StockRunc string
	// PauseC is the kubelet tree's build/pause/pause.c.
	PauseC string
}

// Paths under the repository root.
const (
	// StockKubeletDir is where the e2e target builds the stock kubelet.
	StockKubeletDir = "_build/kubernetes/v1.12.4-stock"
	stockRuncBin    = "_build/runc/v1.0.0-rc5-unpatched/runc"
	pauseC          = "_build/kubernetes/v1.12.4/gopath/src/k8s.io/kubernetes/build/pause/pause.c"
)

// PauseSource is the kubelet tree's pause.c under the repository root.
func PauseSource(root string) string { return filepath.Join(root, pauseC) }

// FindArtifacts finds the artifacts under the repository root.
func FindArtifacts(root string) (*Artifacts, error) {
	a := &Artifacts{Root: root, Pub: filepath.Join(root, "_output", "nokmem-release.pub"),
		StockKubelet: filepath.Join(root, StockKubeletDir, "kubelet"), PauseC: PauseSource(root)}
	tgzs, _ := filepath.Glob(filepath.Join(root, "_output", "bundle", bundle.NamePrefix+"*"+bundle.TarExt))
	if len(tgzs) == 0 {
		return nil, fmt.Errorf("no node bundle in %s: run `go tool mage build`", filepath.Join(root, "_output", "bundle"))
	}
	slices.SortFunc(tgzs, func(x, y string) int {
		fx, _ := os.Stat(x)
		fy, _ := os.Stat(y)
		return fy.ModTime().Compare(fx.ModTime())
	})
	a.Bundle = tgzs[0]
	var errs []error
	for what, p := range map[string]string{"the release key": a.Pub, "the stock kubelet (go tool mage e2e:stockKubelet)": a.StockKubelet, "the kubelet tree's pause.c": a.PauseC} {
		if _, err := os.Stat(p); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
		}
	}
	if _, err := os.Stat(filepath.Join(root, stockRuncBin)); err == nil {
		a.StockRunc = filepath.Join(root, stockRuncBin)
	}
	return a, errors.Join(errs...)
}
