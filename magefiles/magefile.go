//go:build mage

// Mage targets for nokmem. Targets stay thin: the work lives in tested
// packages under internal/. Run `go tool mage -l` for the list.
package main
