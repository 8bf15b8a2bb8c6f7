package kubeletnode

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

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
	// StockRunc is the bundle's runc built without its patches, "" when
	// there is no such build (set by ForBundle).
	StockRunc string
	// PauseC is the kubelet tree's build/pause/pause.c.
	PauseC string
}

// Paths under the repository root.
const (
	// StockKubeletDir is where the e2e target builds the stock kubelet.
	StockKubeletDir = "_build/kubernetes/v1.12.4-stock"
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
	return a, errors.Join(errs...)
}

// ForBundle checks that the stock kubelet is a build of the bundle's
// kubelet version and finds the stock build of the bundle's runc version:
// _build/runc/<version>-unpatched/runc, which runc:build makes for the
// default runc (the default may change; the bundle says which it is).
// Without one, StockRunc stays "".
func (a *Artifacts) ForBundle(m *bundle.Manifest) error {
	k, r := m.Binary("kubelet"), m.Binary("runc")
	if k == nil || r == nil {
		return fmt.Errorf("bundle %s: no kubelet or no runc in its manifest", a.Bundle)
	}
	kv, _, _ := strings.Cut(k.Version, "+")
	if want := filepath.Base(StockKubeletDir); want != kv+"-stock" {
		return fmt.Errorf("bundle %s has kubelet %s, the stock kubelet (%s) is a build of %s", a.Bundle, k.Version, StockKubeletDir, strings.TrimSuffix(want, "-stock"))
	}
	rv, _, _ := strings.Cut(r.Version, "+")
	bin := filepath.Join(a.Root, "_build", "runc", rv+"-unpatched", "runc")
	if _, err := os.Stat(bin); err == nil {
		a.StockRunc = bin
	}
	return nil
}
