package pipeline

import (
	"fmt"

	"github.com/nokmem/nokmem/internal/pins"
)

// DefaultPair is the kubelet and runc version that `go tool mage build`
// builds, bundles and packages: the versions vendor-pins/matrix.yaml marks
// default: true (the only place the pair is set).
func (p *Pipeline) DefaultPair() (pins.Bundle, error) {
	m, err := pins.LoadMatrix(p.PinsDir())
	if err != nil {
		return pins.Bundle{}, err
	}
	b := pins.Bundle{Kubelet: m.Default(Kubelet.Name), Runc: m.Default(Runc.Name)}
	if b.Kubelet == "" || b.Runc == "" {
		return pins.Bundle{}, fmt.Errorf("%s: want one default: true version of %s and of %s, got kubelet %q and runc %q",
			pins.MatrixFile, Kubelet.Name, Runc.Name, b.Kubelet, b.Runc)
	}
	return b, nil
}
