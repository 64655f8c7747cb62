package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// call runs the command line with empty stdin and returns its exit status,
// stdout and stderr.
func call(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// TestHelpOnStdoutOnce: --help, -h and help print the summary once, on
// stdout, and nothing on stderr.
func TestHelpOnStdoutOnce(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		code, out, errs := call(t, args...)
		if code != 0 || out != usage || errs != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 0, the usage once, nothing", args, code, out, errs)
		}
	}
}

// TestHelpCommand: "help COMMAND" and "COMMAND --help" print that
// command's usage on stdout.
func TestHelpCommand(t *testing.T) {
	for name, c := range commands {
		if name == "" {
			continue
		}
		code, out, errs := call(t, "help", name)
		if code != 0 || out != c.usage || errs != "" || !strings.Contains(out, "audisp-enrich "+name) {
			t.Errorf("help %s: exit %d, stdout %q, stderr %q", name, code, out, errs)
		}
		code, out2, errs := call(t, name, "--help")
		if code != 0 || out2 != out || errs != "" {
			t.Errorf("%s --help: exit %d, stdout %q, stderr %q", name, code, out2, errs)
		}
	}
}

// TestUsageErrors: a usage error is one "audisp-enrich: " line and the
// relevant usage, all on stderr, with exit status 2 and nothing on stdout.
func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		msg       string
		wantUsage string
	}{
		{[]string{"--bogus"}, "audisp-enrich: flag provided but not defined: -bogus\n", usage},
		{[]string{"replay", "--bogus"}, "audisp-enrich: flag provided but not defined: -bogus\n", commands["replay"].usage},
		{[]string{"frobnicate"}, "audisp-enrich: unknown command \"frobnicate\"\n", usage},
		{[]string{"help", "frobnicate"}, "audisp-enrich: help: unknown command \"frobnicate\"\n", usage},
		{[]string{"check-config"}, "audisp-enrich: check-config needs a FILE\n", commands["check-config"].usage},
		{[]string{"check-config", "a", "b"}, "audisp-enrich: unexpected argument \"b\"\n", commands["check-config"].usage},
		{[]string{"print-default-config", "x"}, "audisp-enrich: unexpected argument \"x\"\n", commands["print-default-config"].usage},
		{[]string{"--config"}, "audisp-enrich: flag needs an argument: -config\n", usage},
	} {
		code, out, errs := call(t, tc.args...)
		if code != 2 || out != "" || errs != tc.msg+tc.wantUsage {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 2, nothing, %q + usage", tc.args, code, out, errs, tc.msg)
		}
	}
}

func TestVersion(t *testing.T) {
	code, out, errs := call(t, "--version")
	if code != 0 || out != "audisp-enrich dev\n" || errs != "" {
		t.Errorf("--version: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

// TestCheckConfigMessages: every problem of a bad file is one line on
// stderr, "audisp-enrich: FILE:LINE:COL: message"; a good file prints
// "FILE: ok" on stdout.
func TestCheckConfigMessages(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.toml")
	if err := os.WriteFile(good, []byte("[log]\nlevel = \"warn\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := call(t, "check-config", good); code != 0 || out != good+": ok\n" || errs != "" {
		t.Errorf("good: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte("[log]\nlevle = \"warn\"\n[input]\nformat = \"strng\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := call(t, "check-config", bad)
	want := "audisp-enrich: " + bad + ":2:1: unknown key \"log.levle\" (did you mean \"level\"?)\n" +
		"audisp-enrich: " + bad + ":4:10: input.format \"strng\": want string, binary, binary-fixed or binary-exact (did you mean \"string\"?)\n"
	if code != 1 || out != "" || errs != want {
		t.Errorf("bad: exit %d, stdout %q, stderr\n%s\nwant\n%s", code, out, errs, want)
	}
	missing := filepath.Join(dir, "missing.toml")
	code, _, errs = call(t, "check-config", missing)
	if code != 1 || errs != "audisp-enrich: "+missing+": no such file or directory\n" {
		t.Errorf("missing: exit %d, stderr %q", code, errs)
	}
}
