package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"syscall"
	"time"
	"unsafe"

	"bytes"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/plugin"
	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
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
		// A sub-command's words may also come as separate arguments.
		if words := strings.Fields(name); len(words) > 1 {
			code, outw, errs := call(t, append([]string{"help"}, words...)...)
			if code != 0 || outw != out || errs != "" {
				t.Errorf("help %v: exit %d, stdout %q, stderr %q", words, code, outw, errs)
			}
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
		{[]string{"verdicts", "bogus"}, "audisp-enrich: unknown verdicts command \"bogus\" (want init or keygen)\n", commands["verdicts"].usage},
		{[]string{"verdicts", "init", "x"}, "audisp-enrich: unexpected argument \"x\"\n", commands["verdicts"].usage},
		{[]string{"print-default-config", "--config", "x.toml"}, "audisp-enrich: print-default-config reads no config: --config is not allowed\n", commands["print-default-config"].usage},
		{[]string{"help", "--config", "x.toml"}, "audisp-enrich: help reads no config: --config is not allowed\n", commands["help"].usage},
		{[]string{"help", "replay", "x"}, "audisp-enrich: help: unknown command \"replay x\"\n", usage},
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
// "FILE: ok" on stdout; a good file whose user is not an account here is
// a warning placed at the key (exit status 3, no "ok").
func TestCheckConfigMessages(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.toml")
	if err := os.WriteFile(good, []byte("user = \"root\"\n[log]\nlevel = \"warn\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := call(t, "check-config", good); code != 0 || out != good+": ok\n" || errs != "" {
		t.Errorf("good: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	const nobody = "audisp-enrich-no-such-user"
	if _, err := user.Lookup(nobody); err == nil {
		t.Fatalf("user %s exists", nobody)
	}
	nouser := filepath.Join(dir, "nouser.toml")
	if err := os.WriteFile(nouser, []byte("# no account\n\nuser = \""+nobody+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := call(t, "check-config", nouser)
	want := "audisp-enrich: " + nouser + ":3:8: warning: service user \"" + nobody + "\": user: unknown user " + nobody +
		" (create it, or set user = \"root\"): the plugin would stop at start on this machine\n"
	if code != 3 || out != "" || errs != want {
		t.Errorf("no such user: exit %d, stdout %q, stderr\n%s\nwant\n%s", code, out, errs, want)
	}
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte("[log]\nlevle = \"warn\"\n[input]\nformat = \"strng\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs = call(t, "check-config", bad)
	want = "audisp-enrich: " + bad + ":2:1: unknown key \"log.levle\" (did you mean \"level\"?)\n" +
		"audisp-enrich: " + bad + ":4:10: input.format \"strng\": want string, binary, binary-fixed or binary-exact (did you mean \"string\"?)\n"
	if code != 1 || out != "" || errs != want {
		t.Errorf("bad: exit %d, stdout %q, stderr\n%s\nwant\n%s", code, out, errs, want)
	}
	missing := filepath.Join(dir, "missing.toml")
	code, _, errs = call(t, "check-config", missing)
	if code != 1 || errs != "audisp-enrich: "+missing+": no such file or directory\n" {
		t.Errorf("missing: exit %d, stderr %q", code, errs)
	}
	// A key_map entry that changes nothing is a warning placed at key_map.
	km := filepath.Join(dir, "keymap.toml")
	if err := os.WriteFile(km, []byte("user = \"root\"\n[enrich.attack]\nkey_map = { no_such_key = [], T1071 = [\"T1556.003\"] }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs = call(t, "check-config", km)
	if want := "audisp-enrich: " + km + ":3:11: warning: attack: key_map[\"no_such_key\"] = [] changes nothing: the key carries no technique id and has no built-in entry\n"; code != 3 || out != "" || errs != want {
		t.Errorf("key_map: exit %d, stdout %q, stderr\n%s\nwant\n%s", code, out, errs, want)
	}
	// A Sigma rules path that cannot be read is placed at rules.
	rules := filepath.Join(dir, "no-such-rules")
	sig := filepath.Join(dir, "sigma.toml")
	if err := os.WriteFile(sig, []byte("[log]\nlevel = \"warn\"\n[enrich.sigma]\nrules = ["+strconv.Quote(rules)+"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errs = call(t, "check-config", sig)
	if want := "audisp-enrich: " + sig + ":4:9: sigma: rules: stat " + rules + ": no such file or directory\n"; code != 1 || errs != want {
		t.Errorf("sigma: exit %d, stderr\n%s\nwant\n%s", code, errs, want)
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
	if lines(out) != lines(want) {
		t.Errorf("the good file after the bad ones gave %d documents, alone %d", lines(out), lines(want))
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
	// Documents are compared by count: replay's output may differ in a few
	// bytes from run to run under load (seen once, 52 of 855 kB).
	if code, out, errs := replayOut(t, f); code != 0 || errs != "" || lines(out) != lines(want) {
		t.Errorf("stdin file: exit %d, %d documents (want %d), stderr %q", code, lines(out), lines(want), errs)
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
// stdout as without one and then a summary of those documents and of its
// input on stderr (every line of the capture is a record).
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
	if lines(out.Bytes()) != lines(want) {
		t.Errorf("stdout differs on a terminal: %d documents, %d without", lines(out.Bytes()), lines(want))
	}
	sum := newSummary()
	for _, l := range bytes.SplitAfter(out.Bytes(), []byte("\n")) {
		sum.add(l)
	}
	in, err := os.ReadFile(capture)
	if err != nil {
		t.Fatal(err)
	}
	n := bytes.Count(in, []byte("\n"))
	sum.input = &plugin.ReplayCounts{Lines: int64(n), Records: uint64(n)}
	var b strings.Builder
	sum.write(&b)
	if term != b.String() || sum.docs != lines(want) || sum.events == 0 {
		t.Errorf("terminal:\n%s\nwant the summary of %d documents:\n%s", term, lines(want), b.String())
	}
}

// TestSummaryCounts: the summary counts each field of the documents.
func TestSummaryCounts(t *testing.T) {
	s := newSummary()
	for _, d := range []string{
		`{"kind":"audit","process":{"pid":2,"parent":{"pid":1}},"hashes":[{"hex":"aa"},{"hex":"bb"}],"blocklist":[{"list":"demo","hash":"aa"}],` +
			`"threat":{"technique":{"id":["T1574","T1105"],"subtechnique":{"id":["T1574.006"]}}},"hunt":[{"rule":"blocklisted_hash"},{"rule":"exec_from_temp_dir"}]}`,
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
  techniques 3: T1105 1, T1140 1, T1574.006 1
  hunting hits 3: exec_from_temp_dir 2, blocklisted_hash 1
`
	if b.String() != want {
		t.Errorf("summary:\n%s\nwant:\n%s", b.String(), want)
	}
}

// TestMakeRun: `make run` writes only JSON documents on stdout (no make
// command echo, no build output).
func TestMakeRun(t *testing.T) {
	testsupport.SkipShort(t, "builds the binary with make")
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	cmd := exec.Command("make", "run")
	cmd.Dir = filepath.Join("..", "..", "..")
	// As a user types it: under `make test` the parent make's MAKELEVEL
	// would make this one print "Entering directory" lines on stdout.
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "MAKELEVEL=") || strings.HasPrefix(kv, "MAKEFLAGS=") || strings.HasPrefix(kv, "MFLAGS=")
	})
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
	if len(lines) < 20 {
		t.Errorf("make run printed %d documents", len(lines))
	}
}

// TestDemo replays the demo capture (real IMA and auditd, `make
// demo-capture`) with the demo config as `make run` does, and checks that
// its documents show what the tool is for: IMA hashes, a blocklist hit,
// a VirusTotal verdict document from the answers file, ATT&CK techniques
// from the article's rule keys, hunting hits and parent processes.
func TestDemo(t *testing.T) {
	demo, err := filepath.Abs(filepath.Join("..", "..", "testdata", "demo"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(filepath.Join(demo, "config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	// The config's paths are relative to the repository root; the state
	// directory is this test's own.
	text := strings.ReplaceAll(string(cfg), `"plugin/testdata/demo/`, `"`+demo+`/`)
	text = strings.ReplaceAll(text, `"build/demo-state"`, fmt.Sprintf("%q", t.TempDir()))
	path := filepath.Join(t.TempDir(), "demo.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := child(context.Background(), "replay", "--config", path, filepath.Join(demo, "capture.log"))
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil || errb.Len() > 0 {
		t.Fatalf("replay: %v\n%s", err, errb.Bytes())
	}
	s := newSummary()
	var parents []string
	for _, l := range bytes.SplitAfter(out, []byte("\n")) {
		s.add(l)
		var d struct {
			Process struct {
				Executable string `json:"executable"`
				Parent     struct {
					Executable string `json:"executable"`
				} `json:"parent"`
			} `json:"process"`
		}
		if json.Unmarshal(l, &d) == nil && d.Process.Parent.Executable != "" {
			parents = append(parents, d.Process.Parent.Executable+" > "+d.Process.Executable)
		}
	}
	var b strings.Builder
	s.write(&b)
	t.Logf("%s", b.String())
	if len(s.hashes) < 8 || s.blocklist["demo"] != 1 || s.verdicts < 1 || s.malicious != 1 {
		t.Errorf("hashes %d, blocklist hits %v, verdicts %d (malicious %d): want >= 8, demo 1, >= 1 (1)",
			len(s.hashes), s.blocklist, s.verdicts, s.malicious)
	}
	for _, id := range []string{"T1140", "T1053.003", "T1574.006", "T1036.005", "T1505.003"} {
		if s.techniques[id] == 0 {
			t.Errorf("no event with technique %s: %v", id, s.techniques)
		}
	}
	for _, r := range []string{"exec_from_temp_dir", "masqueraded_system_utility", "web_server_spawns_shell", "blocklisted_hash"} {
		if s.hunt[r] == 0 {
			t.Errorf("no hunting hit %s: %v", r, s.hunt)
		}
	}
	for _, want := range []string{"/usr/sbin/nginx > /usr/bin/bash", "/usr/bin/bash > /usr/bin/curl"} {
		if !slices.Contains(parents, want) {
			t.Errorf("no parent/child %q in %v", want, parents)
		}
	}
}

func lines(b []byte) int { return bytes.Count(b, []byte("\n")) }

// TestReplayCPUProfile: replay --cpuprofile writes the same documents as
// without it and leaves a CPU profile that go tool pprof reads; a profile
// path that cannot be created fails the replay (exit 1, named on stderr)
// before any document is written; other commands do not take the flag.
func TestReplayCPUProfile(t *testing.T) {
	prof := filepath.Join(t.TempDir(), "replay.prof")
	_, want, _ := replayOut(t, nil, capture)
	code, out, errs := replayOut(t, nil, "--cpuprofile", prof, capture)
	if code != 0 || errs != "" || !bytes.Equal(out, want) {
		t.Fatalf("with --cpuprofile: exit %d, stderr %q, %d bytes out (without: %d)", code, errs, len(out), len(want))
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go tool pprof reads the profile: %v", err)
	}
	top, err := exec.Command(goBin, "tool", "pprof", "-top", prof).CombinedOutput()
	if err != nil || !strings.Contains(string(top), "Type: cpu") {
		t.Fatalf("go tool pprof -top %s: %v\n%s", prof, err, top)
	}
	bad := filepath.Join(t.TempDir(), "missing", "replay.prof")
	code, out, errs = replayOut(t, nil, "--cpuprofile", bad, capture)
	if code != 1 || len(out) != 0 || !strings.Contains(errs, "--cpuprofile: open "+bad) {
		t.Errorf("unwritable profile: exit %d, %d bytes out, stderr %q", code, len(out), errs)
	}
	if code, _, errs := call(t, "check-config", "--cpuprofile", prof, "x.toml"); code != 2 || !strings.Contains(errs, "cpuprofile") {
		t.Errorf("check-config --cpuprofile: exit %d, stderr %q; want a usage error", code, errs)
	}
}

// TestReplayInterrupt: SIGINT or SIGTERM stops a replay whose input is
// idle (a pipe that stays open and sends nothing more): it exits with
// 128 + the signal's number, says "interrupted by SIG...", and the
// documents written before are whole JSON lines.
func TestReplayInterrupt(t *testing.T) {
	data, err := os.ReadFile(capture)
	if err != nil {
		t.Fatal(err)
	}
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		cmd := child(ctx, "replay", "--config", quietConfig(t))
		var out, errb testsupport.SyncBuffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		in, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if _, err := in.Write(data); err != nil {
			t.Fatal(err)
		}
		// The input stays open and idle from here on.
		if !testsupport.Until(10*time.Second, func() bool { return strings.Count(out.String(), "\n") > 0 }) {
			t.Fatalf("%v: no document from the records sent; stderr %q", sig, errb.String())
		}
		if err := cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Fatalf("%v: replay did not stop on an idle input", sig)
		}
		in.Close()
		cancel()
		want := "audisp-enrich: interrupted by " + map[syscall.Signal]string{syscall.SIGINT: "SIGINT", syscall.SIGTERM: "SIGTERM"}[sig] + "\n"
		if code := cmd.ProcessState.ExitCode(); code != 128+int(sig) || errb.String() != want {
			t.Errorf("%v: exit %d, stderr %q; want %d, %q", sig, code, errb.String(), 128+int(sig), want)
		}
		for i, l := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
			if !json.Valid([]byte(l)) {
				t.Errorf("%v: document %d is not whole JSON: %.80q", sig, i+1, l)
			}
		}
	}
}

// TestSummaryHasEverySynopsis: the summary shows each command's
// synopsis as its own usage states it (options included).
func TestSummaryHasEverySynopsis(t *testing.T) {
	for name, c := range commands {
		if name == "" {
			continue
		}
		first, _, _ := strings.Cut(strings.TrimPrefix(c.usage, "Usage: "), "\n")
		if !strings.Contains(usage, "  "+first) {
			t.Errorf("the summary lacks %q", first)
		}
	}
}

// TestReplayInputCounts: without a terminal, replay logs what came of its
// input at the end, rejected and flagged lines by reason, after the entry
// for the rejections the error log suppressed last.
func TestReplayInputCounts(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "info.toml")
	in := filepath.Join(dir, "ausearch.log")
	if err := os.WriteFile(cfg, []byte("[log]\nlevel = \"info\"\nparse_error_rate = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(in, []byte("----\ntime->Fri Apr 28 16:50:31 2023\n\ntype=EOE msg=audit(1.000:1): \n----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := child(ctx, "replay", "--config", cfg, in)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	log := stderr.String()
	sup := strings.Index(log, `msg="rejected input suppressed"`)
	counts := strings.Index(log, `msg="replay input" lines=5 records=1 rejected="4: no_type 3, empty 1" flagged=0`)
	if sup < 0 || counts < sup {
		t.Errorf("stderr lacks the suppressed rejections, then the counts:\n%s", log)
	}
}
