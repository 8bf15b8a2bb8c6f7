// Package sealedjson encodes the JSON state files that carry a checksum of
// their own content (the migration journal, the install record), so that a
// hand edit or damage is refused when they are read back. The checksum is
// "sha256:<hex>" of the value's compact JSON encoding with the checksum
// field empty; the field's JSON name is "checksum".
package sealedjson

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// emptyField is the checksum field as the compact encoding writes it while
// it is empty. Inside a JSON string its quotes would be escaped, so it
// occurs only as the field itself.
var emptyField = []byte(`"checksum":""`)

// Sum returns the checksum of v, where *checksum is v's checksum field;
// *checksum is left as it was.
func Sum(v any, checksum *string) (string, error) {
	saved := *checksum
	*checksum = ""
	defer func() { *checksum = saved }()
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return digest(b), nil
}

// Encode sets *checksum, v's checksum field, to v's checksum and returns
// v's indented encoding with a final newline. It encodes v once (the
// journal is written at every phase, inside the kubelet's downtime): the
// compact encoding with the field empty is what the checksum covers, and
// the result is that encoding with the checksum filled in, indented.
func Encode(v any, checksum *string) ([]byte, error) {
	*checksum = ""
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if n := bytes.Count(b, emptyField); n != 1 {
		return nil, fmt.Errorf("%d empty checksum fields in the encoding, want 1", n)
	}
	*checksum = digest(b)
	b = bytes.Replace(b, emptyField, []byte(`"checksum":"`+*checksum+`"`), 1)
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

func digest(b []byte) string {
	h := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(h[:])
}
