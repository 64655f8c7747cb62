package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"syscall"
	"time"
	"unsafe"

	"bytes"
	"github.com/audisp-enrich/audisp-enrich/plugin"
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

// TestMain lets tests run the command in a child process: the test binary
// is the command when AUDISP_ENRICH_TEST_MAIN=1.
func TestMain(m *testing.M) {
	if os.Getenv("AUDISP_ENRICH_TEST_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// child returns the command line as a child process.
func child(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), "AUDISP_ENRICH_TEST_MAIN=1")
	return cmd
}

const capture = "../../testdata/capture.log"

// quietConfig writes a config that logs only warnings, so stderr holds
// only what the command itself reports.
func quietConfig(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "quiet.toml")
	if err := os.WriteFile(path, []byte("[log]\nlevel = \"warn\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func replayOut(t *testing.T, stdin *os.File, args ...string) (int, []byte, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := child(ctx, append([]string{"replay", "--config", quietConfig(t)}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), out.Bytes(), errb.String()
}

// TestReplayBadFiles: a missing file, a directory and a broken gzip file
// are each reported as "audisp-enrich: FILE: reason" while the good file
// after them is still replayed in full; the exit status is 1.
func TestReplayBadFiles(t *testing.T) {
	dir := t.TempDir()
	missing, adir, badgz := filepath.Join(dir, "missing.log"), filepath.Join(dir, "adir"), filepath.Join(dir, "bad.log.gz")
	if err := os.Mkdir(adir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(badgz, []byte{0x1f, 0x8b, 0, 0, 0}, 0o600); err != nil {
		t.Fatal(err)
	}
	code, want, errs := replayOut(t, nil, capture)
	if code != 0 || errs != "" || bytes.Count(want, []byte("\n")) < 100 {
		t.Fatalf("capture alone: exit %d, %d lines, stderr %q", code, bytes.Count(want, []byte("\n")), errs)
	}
	code, out, errs := replayOut(t, nil, missing, adir, badgz, capture)
	wantErr := "audisp-enrich: " + missing + ": no such file or directory\n" +
		"audisp-enrich: " + adir + ": is a directory; replay reads log files (such as " + adir + "/audit.log*)\n" +
		"audisp-enrich: " + badgz + ": unexpected EOF\n"
	if code != 1 || errs != wantErr {
		t.Errorf("exit %d, stderr\n%s\nwant 1 and\n%s", code, errs, wantErr)
	}
	if !bytes.Equal(out, want) {
		t.Errorf("the good file after the bad ones gave %d bytes, alone %d", len(out), len(want))
	}
}

// TestReplayStdin: with no FILE, stdin is read when it is not a terminal
// (a file, /dev/null, which is a character device but no terminal).
func TestReplayStdin(t *testing.T) {
	f, err := os.Open(capture)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, want, _ := replayOut(t, nil, capture)
	if code, out, errs := replayOut(t, f); code != 0 || errs != "" || !bytes.Equal(out, want) {
		t.Errorf("stdin file: exit %d, %d bytes (want %d), stderr %q", code, len(out), len(want), errs)
	}
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	if code, out, errs := replayOut(t, null); code != 0 || len(out) != 0 || errs != "" {
		t.Errorf("stdin /dev/null: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

// openPTY opens a pseudo-terminal pair.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	var unlock int32
	var n uint32
	if err := ioctl(m, syscall.TIOCSPTLCK, unsafe.Pointer(&unlock)); err != nil {
		t.Fatal(err)
	}
	if err := ioctl(m, syscall.TIOCGPTN, unsafe.Pointer(&n)); err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

func ioctl(f *os.File, req uintptr, arg unsafe.Pointer) error {
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), req, uintptr(arg)); errno != 0 {
		return errno
	}
	return nil
}

// readAll reads the terminal's output until the slave side is closed.
func readAll(m *os.File) <-chan string {
	ch := make(chan string, 1)
	go func() {
		var b bytes.Buffer
		_, _ = io.Copy(&b, m) // ends with EIO once no process holds the slave
		ch <- b.String()
	}()
	return ch
}

// TestReplayTerminalHint: with no FILE and stdin a terminal, replay prints
// a hint and exits 2 instead of waiting for input.
func TestReplayTerminalHint(t *testing.T) {
	_, s := openPTY(t)
	code, out, errs := replayOut(t, s)
	if code != 2 || len(out) != 0 || !strings.HasPrefix(errs, "audisp-enrich: replay: no FILE given and stdin is a terminal") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

// TestReplayProgress: with stderr on a terminal, a file over
// ProgressMinBytes gets a progress line ending with its final figures; a
// small one gets none. The summary follows either way.
func TestReplayProgress(t *testing.T) {
	data, err := os.ReadFile(capture)
	if err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(t.TempDir(), "big.log")
	whole := bytes.Repeat(data, plugin.ProgressMinBytes/len(data)+2)
	if err := os.WriteFile(big, whole, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		file     string
		progress bool
	}{{big, true}, {capture, false}} {
		m, s := openPTY(t)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		cmd := child(ctx, "replay", "--config", quietConfig(t), tc.file)
		cmd.Stdout, cmd.Stderr = io.Discard, s
		got := readAll(m)
		err := cmd.Run()
		s.Close()
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		term, sum, _ := strings.Cut(<-got, "audisp-enrich: summary of the ")
		if !strings.Contains(sum, "documents on stdout:") {
			t.Errorf("%s: no summary on the terminal: %q", tc.file, sum)
		}
		total := fmt.Sprintf("%.1f MiB", float64(len(whole))/(1<<20))
		final := regexp.MustCompile(`\r` + regexp.QuoteMeta(big) + `: ` + total + ` of ` + total + ` \(100%\), [0-9]+ records/s, [1-9][0-9]* events out\x1b\[K\r?\n$`)
		if tc.progress && !final.MatchString(term) {
			t.Errorf("%s: terminal got %q; want a progress line ending in %s", tc.file, term, final)
		}
		if !tc.progress && term != "" {
			t.Errorf("%s: terminal got %q, want nothing", tc.file, term)
		}
	}
}

// TestReplaySummary: with stderr on a terminal, replay writes the same
// stdout as without one and then a summary of those documents on stderr.
func TestReplaySummary(t *testing.T) {
	_, want, _ := replayOut(t, nil, capture)
	m, s := openPTY(t)
	cmd := child(context.Background(), "replay", "--config", quietConfig(t), capture)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, s
	got := readAll(m)
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	term := strings.ReplaceAll(<-got, "\r\n", "\n")
	if !bytes.Equal(out.Bytes(), want) {
		t.Errorf("stdout differs on a terminal: %d bytes, %d without", out.Len(), len(want))
	}
	sum := newSummary()
	for _, l := range bytes.SplitAfter(want, []byte("\n")) {
		sum.add(l)
	}
	var b strings.Builder
	sum.write(&b)
	if term != b.String() || sum.docs != bytes.Count(want, []byte("\n")) || sum.events == 0 {
		t.Errorf("terminal:\n%s\nwant the summary of %d documents:\n%s", term, bytes.Count(want, []byte("\n")), b.String())
	}
}

// TestSummaryCounts: the summary counts each field of the documents.
func TestSummaryCounts(t *testing.T) {
	s := newSummary()
	for _, d := range []string{
		`{"kind":"audit","process":{"pid":2,"parent":{"pid":1}},"hashes":[{"hex":"aa"},{"hex":"bb"}],"blocklist":[{"list":"demo","hash":"aa"}],` +
			`"threat":{"technique":{"id":["T1574"],"subtechnique":{"id":["T1574.006"]}}},"hunt":[{"rule":"blocklisted_hash"},{"rule":"exec_from_temp_dir"}]}`,
		`{"kind":"audit","hashes":[{"hex":"aa"}],"threat":{"technique":{"id":["T1140"]}},"hunt":[{"rule":"exec_from_temp_dir"}]}`,
		`{"kind":"verdict","virustotal":{"status":"hit","malicious":12}}`,
		`not json`,
	} {
		s.add([]byte(d + "\n"))
	}
	var b strings.Builder
	s.write(&b)
	want := `audisp-enrich: summary of the 3 documents on stdout:
  events 2, with a parent process 1
  hashes seen 3 (2 distinct)
  blocklist hits 1: demo 1
  verdicts 1 (malicious 1)
  techniques 2: T1140 1, T1574.006 1
  hunting hits 3: exec_from_temp_dir 2, blocklisted_hash 1
`
	if b.String() != want {
		t.Errorf("summary:\n%s\nwant:\n%s", b.String(), want)
	}
}

// TestMakeRun: `make run` writes only JSON documents on stdout (no make
// command echo, no build output).
func TestMakeRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary with make")
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	cmd := exec.Command("make", "run")
	cmd.Dir = filepath.Join("..", "..", "..")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("make run: %v\n%s", err, errb.Bytes())
	}
	lines := bytes.Split(bytes.TrimSuffix(out, []byte("\n")), []byte("\n"))
	for i, l := range lines {
		if !json.Valid(l) || l[0] != '{' {
			t.Fatalf("stdout line %d is not a JSON document: %.200q", i+1, l)
		}
	}
	if len(lines) < 100 {
		t.Errorf("make run printed %d documents", len(lines))
	}
}
