package main

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nokmem/nokmem/internal/testenv"
)

// checkArgs fails unless args name a verify subcommand and every flag parses.
func checkArgs(t *testing.T, where string, args []string) {
	t.Helper()
	root := newRootCmd(io.Discard, io.Discard)
	cmd, rest, err := root.Find(args)
	if err != nil || cmd == root {
		t.Fatalf("%s: %v does not name a verify subcommand: %v", where, args, err)
	}
	if err := cmd.ParseFlags(rest); err != nil {
		t.Fatalf("%s: %v: %v", where, args, err)
	}
	if n := len(cmd.Flags().Args()); n != 0 {
		t.Fatalf("%s: %v: %d stray arguments", where, args, n)
	}
}

func TestNPDPluginConfig(t *testing.T) {
	b, err := os.ReadFile("../scripts/npd-nokmem-plugin.json")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Plugin       string `json:"plugin"`
		PluginConfig struct {
			MaxOutputLength int `json:"max_output_length"`
		} `json:"pluginConfig"`
		Conditions []struct{ Type string } `json:"conditions"`
		Rules      []struct {
			Type, Condition, Path string
			Args                  []string
		} `json:"rules"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("npd config: %v", err)
	}
	if cfg.Plugin != "custom" || len(cfg.Rules) != 1 || len(cfg.Conditions) != 1 || cfg.Rules[0].Condition != cfg.Conditions[0].Type {
		t.Fatalf("npd config: %+v", cfg)
	}
	if filepath.Base(cfg.Rules[0].Path) != "verify" || cfg.PluginConfig.MaxOutputLength < 80 {
		t.Fatalf("npd rule %+v", cfg.Rules[0])
	}
	checkArgs(t, "npd rule", cfg.Rules[0].Args)
}

// TestSystemdUnit checks the one-shot unit: ExecStart names a verify
// subcommand whose flags parse, and systemd's own parser (systemd-analyze
// verify, which does not need systemd running) accepts the unit without a
// single complaint and exits 0. The unit's program is pointed at a stub,
// because /opt/nokmem/bin/verify is not installed here; everything else is
// checked as written. Units with a typo are shown to be rejected, so the
// check can fail.
func TestSystemdUnit(t *testing.T) {
	const unit = "../scripts/nokmem-acceptance.service"
	b, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	content := string(b)
	var exec []string
	sc := bufio.NewScanner(strings.NewReader(content))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "ExecStart="); ok {
			exec = strings.Fields(v)
		}
	}
	if len(exec) < 2 || filepath.Base(exec[0]) != "verify" {
		t.Fatalf("ExecStart %v", exec)
	}
	checkArgs(t, "ExecStart", exec[1:])

	analyze := testenv.RequireCommand(t, "systemd-analyze")
	stub := filepath.Join(t.TempDir(), "verify")
	if err := os.WriteFile(stub, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(content, "ExecStart="+exec[0]+" "); n != 1 {
		t.Fatalf("%s: ExecStart=%s found %d times, want once", unit, exec[0], n)
	}
	content = strings.Replace(content, "ExecStart="+exec[0]+" ", "ExecStart="+stub+" ", 1)
	if out, err := verifyUnit(t, analyze, content); err != nil || out != "" {
		t.Errorf("systemd-analyze verify %s: %v\n%s", unit, err, out)
	}

	// The same check on broken copies (the lines are appended to the last
	// section, [Service]) must complain.
	for _, bad := range []string{"Type=oneshoot", "StateDirectry=nokmem", "TimeoutStartSec=fifteen"} {
		t.Run(bad, func(t *testing.T) {
			out, err := verifyUnit(t, analyze, content+bad+"\n")
			if err == nil && out == "" {
				t.Errorf("systemd-analyze verify accepts a unit with %q", bad)
			}
		})
	}
}

// verifyUnit writes a unit file and runs systemd-analyze verify on it; it
// returns the tool's output (trimmed) and its exit error.
func verifyUnit(t *testing.T, analyze, content string) (string, error) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "nokmem-acceptance.service")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := execCommand(analyze, "verify", "--man=no", p)
	return strings.TrimSpace(out), err
}

// TestSystemTapScripts parses the leaked-ID counters (stap -p1: parse
// only). stap insists on a kernel build tree even for that, so it gets a
// stub one claiming a RHEL 7.8 release.
func TestSystemTapScripts(t *testing.T) {
	stap := testenv.RequireCommand(t, "stap")
	build := t.TempDir()
	for name, content := range map[string]string{
		"include/config/kernel.release": "3.10.0-1127.el7.x86_64\n",
		".config":                       "",
		"Module.symvers":                "",
	} {
		p := filepath.Join(build, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []string{"leaked-ids-cssid.stp", "leaked-ids-idr.stp"} {
		t.Run(s, func(t *testing.T) {
			out, err := execCommand(stap, "-g", "-p1", "-r", build, filepath.Join("..", "scripts", s))
			if err != nil {
				t.Fatalf("stap -p1 %s: %v\n%s", s, err, out)
			}
		})
	}
}

func execCommand(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}
