package report

import (
	"fmt"
	"io"
	"strings"
)

// NPDStatus is a node-problem-detector custom-plugin result, also the
// process exit code.
type NPDStatus int

// The custom-plugin exit codes.
const (
	NPDOK      NPDStatus = 0
	NPDProblem NPDStatus = 1
	NPDUnknown NPDStatus = 2
)

// NPDMaxMessage is the longest message written; node-problem-detector
// truncates plugin output (max_output_length, 80 in its examples) anyway.
const NPDMaxMessage = 80

// WriteNPD writes msg as the one short line node-problem-detector reads.
func WriteNPD(w io.Writer, msg string) error {
	msg = strings.Join(strings.Fields(msg), " ")
	if r := []rune(msg); len(r) > NPDMaxMessage {
		msg = string(r[:NPDMaxMessage-1]) + "…"
	}
	_, err := fmt.Fprintln(w, msg)
	return err
}
