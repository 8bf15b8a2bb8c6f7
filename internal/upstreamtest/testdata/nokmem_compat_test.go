// This file is not part of the nokmem module: internal/upstreamtest places
// it (with go test's -overlay) into the assembled kubernetes tree's
// vendor/k8s.io/apimachinery/pkg/runtime/serializer/json package, next to
// upstream's own tests, to cover what they do not: encoding an object with
// maps through the YAML and pretty-JSON serializers (json-iterator and
// reflect2 map iteration, which crashes on Go >= 1.18 with reflect2 older
// than v1.0.2), and loading the ugorji codec (its init panics on Go >= 1.22
// without the alphabet patch; etcd's client imports it).

package json_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/coreos/etcd/client"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
)

// probeObject is a runtime.Object with map fields and no custom marshaller,
// so json-iterator walks the maps itself.
type probeObject struct {
	metav1.TypeMeta `json:",inline"`
	Labels          map[string]string      `json:"labels"`
	Extra           map[string]interface{} `json:"extra"`
}

func (p *probeObject) DeepCopyObject() runtime.Object {
	c := *p
	return &c
}

func TestNokmemCompatMapEncoding(t *testing.T) {
	obj := &probeObject{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Probe"},
		Labels:   map[string]string{"app": "kubelet", "tier": "node"},
		Extra:    map[string]interface{}{"nested": map[string]interface{}{"k": "v"}, "n": 1},
	}
	tests := []struct {
		name string
		s    *json.Serializer
		want []string
	}{
		{"yaml", json.NewYAMLSerializer(json.DefaultMetaFactory, nil, nil), []string{"app: kubelet", "tier: node", "k: v"}},
		{"pretty json", json.NewSerializer(json.DefaultMetaFactory, nil, nil, true), []string{`"app": "kubelet"`, `"k": "v"`}},
		{"json", json.NewSerializer(json.DefaultMetaFactory, nil, nil, false), []string{`"app":"kubelet"`, `"k":"v"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := tt.s.Encode(obj, &buf); err != nil {
				t.Fatalf("Encode: %v", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(buf.String(), w) {
					t.Errorf("encoded %q lacks %q", buf.String(), w)
				}
			}
		})
	}
}

func TestNokmemCompatUgorjiCodecLoads(t *testing.T) {
	// Linking etcd's client runs the ugorji codec's package init; reaching
	// this line means it did not panic.
	if _, err := client.New(client.Config{Endpoints: []string{"http://127.0.0.1:1"}}); err != nil {
		t.Fatalf("etcd client.New: %v", err)
	}
}
