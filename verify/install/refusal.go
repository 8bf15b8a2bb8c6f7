package install

import (
	"errors"
	"fmt"
	"strings"
)

// ErrRefused wraps every refusal of a plan: a target that is not replaced
// unless an option of the install allows it (Refusal.Override).
var ErrRefused = errors.New("refused")

// Override names what lifts a refusal or changes a keep decision: a field
// of Policy, or Target.Create. The caller says it in its own words (the
// verify command names its flag).
type Override string

// Overrides.
const (
	OverrideCreate            Override = "Create"
	OverrideSymlink           Override = "AllowSymlink"
	OverrideUnknown           Override = "AllowUnknown"
	OverrideVersionChange     Override = "AllowVersionChange"
	OverrideSecurityDowngrade Override = "AllowSecurityDowngrade"
	OverrideForce             Override = "Force"
)

// Refusal is one target a plan does not replace. Its error wraps
// ErrRefused, or ErrForeignChange for a file someone else changed.
type Refusal struct {
	// Path is the target the refusal is about.
	Path string
	// Override lifts the refusal.
	Override Override
	err      error
}

func (r *Refusal) Error() string { return r.err.Error() }
func (r *Refusal) Unwrap() error { return r.err }

// refuse is a refusal of path that override lifts.
func refuse(path string, override Override, format string, a ...any) *Refusal {
	return &Refusal{Path: path, Override: override, err: fmt.Errorf(format, a...)}
}

// PlanError is every refusal of one plan, so that one run names them all.
// Nothing was changed.
type PlanError struct {
	Refusals []*Refusal
}

func (e *PlanError) Error() string {
	msgs := make([]string, len(e.Refusals))
	for i, r := range e.Refusals {
		msgs[i] = r.Error()
	}
	return strings.Join(msgs, "\n") + "; nothing was changed"
}

func (e *PlanError) Unwrap() []error {
	errs := make([]error, len(e.Refusals))
	for i, r := range e.Refusals {
		errs[i] = r
	}
	return errs
}
