package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nokmem/nokmem/verify/acceptance"
	"github.com/nokmem/nokmem/verify/detect"
	"github.com/nokmem/nokmem/verify/report"
)

// The exit statuses of verify. exitCodeTable documents every one of them,
// and no other file gives a status a number or a meaning: the run steps'
// codes come from acceptance.ExitCodes, detect's verdicts map through
// statusExit, and each command's help lists its codes with exitHelp.
// `verify exit-codes` prints the table as Markdown (the docs are generated
// from it; keep the format: a header row and one row per code) or JSON.
const (
	exitOK = 0
	// exitProblem: detect found a problem, assert failed, or a command failed.
	exitProblem = 1
	// exitUnknown: detect could not decide (the node-problem-detector
	// custom-plugin code for "unknown").
	exitUnknown = 2
	// exitPointless: migrate refused on a kernel without 3.10 semantics.
	exitPointless = 3
	// exitUsage: the command line is wrong (unknown command or flag, a
	// stray argument, flags that make no sense together). Nothing ran.
	// 64 is EX_USAGE of sysexits.h.
	exitUsage = 64
)

// exitCode is one row of the exit-code table.
type exitCode struct {
	Code     int    `json:"code"`
	Name     string `json:"name"`
	Commands string `json:"commands"`
	Meaning  string `json:"meaning"`
}

// exitCodeTable is the one table of verify's exit statuses, ordered by code.
func exitCodeTable() []exitCode {
	t := []exitCode{
		{exitOK, "ok", "all", "done; detect: healthy (a kernel where the leak cannot happen is healthy); assert: passed or not applicable; run: passed or not applicable"},
		{exitProblem, "problem", "all", "detect: a problem found (each on a PROBLEM line); assert: kmem accounting is on somewhere (or not applicable with --strict); other commands: failed, the message says what is left and what to run"},
		{exitUnknown, "unknown", "detect", "the kernel semantics could not be decided, or detect itself failed (node-problem-detector: unknown)"},
		{exitPointless, "pointless", "migrate", "refused: a modern kernel frees memcg IDs at rmdir, so migrating is pointless (--force overrides; a kernel whose semantics are unknown is refused with exit 1)"},
		{exitUsage, "usage", "all", "usage error: unknown command or flag, a stray argument, or flags that make no sense together; nothing was read or changed"},
	}
	for step, code := range acceptance.ExitCodes {
		t = append(t, exitCode{code, "run-" + step, "run", fmt.Sprintf("run stopped at its %s step (the report's \"next\" says what to run)", step)})
	}
	slices.SortFunc(t, func(a, b exitCode) int { return a.Code - b.Code })
	return t
}

// statusExit is the exit status of a detect verdict (detect, and the
// node-problem-detector plugin codes of detect --npd).
func statusExit(st detect.Status) int {
	switch st {
	case detect.Healthy:
		return exitOK
	case detect.ProblemFound:
		return exitProblem
	}
	return exitUnknown
}

// exitHelp is the exit-status paragraph of a command's help, from the table:
// the codes of command (a name of the table's commands column) and of all.
func exitHelp(command string) string {
	var codes []string
	for _, c := range exitCodeTable() {
		if c.Commands == "all" || c.Commands == command {
			codes = append(codes, fmt.Sprintf("%d %s", c.Code, c.Name))
		}
	}
	var b strings.Builder
	line := "Exit status (what each means: verify exit-codes):"
	for i, c := range codes {
		if i < len(codes)-1 {
			c += ","
		} else {
			c += "."
		}
		if len(line)+1+len(c) > 76 {
			b.WriteString(line + "\n")
			line = c
			continue
		}
		line += " " + c
	}
	b.WriteString(line)
	return b.String()
}

// writeExitCodeTable writes the table as Markdown.
func writeExitCodeTable(w io.Writer) error {
	var b strings.Builder
	b.WriteString("| exit | name | commands | meaning |\n|---|---|---|---|\n")
	for _, c := range exitCodeTable() {
		fmt.Fprintf(&b, "| %d | %s | %s | %s |\n", c.Code, c.Name, c.Commands, c.Meaning)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func init() { subcommands = append(subcommands, newExitCodesCmd) }

func newExitCodesCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "exit-codes",
		Short: "Print the table of verify's exit statuses (Markdown, or JSON with -o json)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if g.JSON() {
				return report.WriteJSON(g.Stdout, exitCodeTable())
			}
			return writeExitCodeTable(g.Stdout)
		},
	}
}
