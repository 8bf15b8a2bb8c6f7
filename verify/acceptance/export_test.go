package acceptance

import (
	"time"

	"github.com/nokmem/nokmem/verify/binary"
)

// SlowHash makes k's hashing take at least d, like a large kubelet on a
// slow machine.
func SlowHash(k *KubeletCheck, d time.Duration) {
	k.hash = func(p string) (string, error) {
		time.Sleep(d)
		return binary.FileSHA256(p)
	}
}
