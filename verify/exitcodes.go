package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nokmem/nokmem/verify/acceptance"
	"github.com/nokmem/nokmem/verify/report"
)

// The exit statuses of verify. exitCodeTable documents every one of them;
// `verify exit-codes` prints it as Markdown, so the docs can be generated
// from it.
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
		{exitPointless, "pointless", "migrate", "refused: a kernel without 3.10 semantics frees memcg IDs at rmdir, so migrating is pointless (--force overrides)"},
		{exitUsage, "usage", "all", "usage error: unknown command or flag, a stray argument, or flags that make no sense together; nothing was read or changed"},
	}
	for step, code := range acceptance.ExitCodes {
		t = append(t, exitCode{code, "run-" + step, "run", fmt.Sprintf("run stopped at its %s step (the report's \"next\" says what to run)", step)})
	}
	slices.SortFunc(t, func(a, b exitCode) int { return a.Code - b.Code })
	return t
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
