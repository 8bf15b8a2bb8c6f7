package pipeline

import (
	"github.com/nokmem/nokmem/internal/stepstamp"
)

// RunStep runs do unless the step's record shows its inputs and outputs
// unchanged; either way it says so in one line on Out (the no-op build
// check, magefiles/noopbuild.go, reads these lines). The record is removed
// before do and written after it succeeded, with s.Inputs as do left it,
// so a failed step leaves no record and runs again.
func (p *Pipeline) RunStep(s *stepstamp.Step, do func() error) error {
	ok, why, err := s.Check()
	if err != nil {
		return err
	}
	if ok {
		p.say("%s: up to date, nothing to do (record %s)", s.Name, s.File)
		return nil
	}
	p.say("%s: running (%s)", s.Name, why)
	if err := s.Forget(); err != nil {
		return err
	}
	if err := do(); err != nil {
		return err
	}
	return s.Record()
}
