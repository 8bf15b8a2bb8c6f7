package acceptance

import "time"

// SlowHash makes k's hashing take at least d, like a large kubelet on a
// slow machine.
func SlowHash(k *KubeletCheck, d time.Duration) {
	k.hash = func(p string) (string, error) {
		time.Sleep(d)
		return fileSHA256(p)
	}
}
