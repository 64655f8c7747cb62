package plugin_test

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
)

// captureLines returns the bundled real-auditd capture.
func captureLines(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("testdata/capture.log")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n")
}

type plugProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    string
	stderr *testsupport.SyncBuffer // what it logged (also copied to the test's stderr)
}

// startPlugin runs the binary in plugin mode with a config writing to a file.
func startPlugin(t *testing.T, extra string) *plugProc {
	t.Helper()
	dir := t.TempDir()
	bin := testsupport.PluginBinary(t)
	out := filepath.Join(dir, "events.json")
	cfg := filepath.Join(dir, "config.toml")
	writeFile(t, cfg, fmt.Sprintf("user = \"root\"\nstate_dir = %q\n[log]\nsyslog = false\n[status]\ninterval = \"0s\"\n[[sink]]\ntype = \"file\"\n[sink.file]\npath = %q\n%s", dir, out, extra))
	cmd := exec.Command(bin, "--config", cfg)
	cmd.Env = []string{} // auditd gives plugins an empty environment
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := new(testsupport.SyncBuffer)
	cmd.Stderr = io.MultiWriter(os.Stderr, stderr)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return &plugProc{cmd: cmd, stdin: stdin, out: out, stderr: stderr}
}

// runPlugin starts bin in plugin mode with the config cfg and an empty
// environment (as auditd does), its stdin a pipe and its stderr kept; the
// process is killed at the end of the test if it still runs.
func runPlugin(t *testing.T, bin, cfg string) (*exec.Cmd, io.WriteCloser, *testsupport.SyncBuffer) {
	t.Helper()
	cmd := exec.Command(bin, "--config", cfg)
	cmd.Env = []string{}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := new(testsupport.SyncBuffer)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd, stdin, stderr
}

func countLines(t *testing.T, path string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	n := 0
	for sc.Scan() {
		n++
	}
	return n
}

// expectedEvents is what replay makes of the same input.
func expectedEvents(t *testing.T) int {
	t.Helper()
	bin := testsupport.PluginBinary(t)
	out, err := exec.Command(bin, "replay", "testdata/capture.log").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(out), "\n")
}

// TestShutdownOnEOFAndSIGTERM: stdin EOF and SIGTERM both flush every event
// and exit within ShutdownGrace (with a margin). "sigterm-at-once" signals as soon as the last
// line is in the pipe, as auditd does when it stops: what the plugin had
// read or could still read is processed, not dropped as unprocessed.
func TestShutdownOnEOFAndSIGTERM(t *testing.T) {
	lines := captureLines(t)
	want := expectedEvents(t)
	for _, how := range []string{"eof", "sigterm", "sigterm-at-once"} {
		t.Run(how, func(t *testing.T) {
			p := startPlugin(t, "")
			if _, err := io.WriteString(p.stdin, strings.Join(lines, "\n")+"\n"); err != nil {
				t.Fatal(err)
			}
			if how != "sigterm-at-once" {
				time.Sleep(300 * time.Millisecond) // let the reader take the input
			}
			start := time.Now()
			if how == "eof" {
				p.stdin.Close()
			} else {
				_ = p.cmd.Process.Signal(syscall.SIGTERM)
			}
			err := p.cmd.Wait()
			took := time.Since(start)
			if err != nil {
				t.Fatalf("exit: %v", err)
			}
			// ShutdownGrace (0.9 s) bounds the stop; the rest is a margin
			// for a loaded machine.
			if took > 2*time.Second {
				t.Errorf("exit took %s, want within 2s", took)
			}
			if got := countLines(t, p.out); got != want {
				t.Errorf("%d events written, want %d (as replay)", got, want)
			}
			validateFile(t, p.out)
			t.Logf("%s: exited in %s with %d events", how, took.Round(time.Millisecond), want)
		})
	}
}

// TestSIGHUPReloadKeepsEvents: a SIGHUP with a changed config (a second
// file sink) loses no event: everything before and after lands in the
// first file, and the second file gets what came after the reload.
func TestSIGHUPReloadKeepsEvents(t *testing.T) {
	lines := captureLines(t)
	want := expectedEvents(t)
	p := startPlugin(t, "")
	half := len(lines) / 2
	// Cut at an event boundary so both halves hold whole events.
	for half < len(lines) && !strings.Contains(lines[half], "type=EOE") {
		half++
	}
	half++
	if _, err := io.WriteString(p.stdin, strings.Join(lines[:half], "\n")+"\n"); err != nil {
		t.Fatal(err)
	}
	// The reload comes after the first events are out and before the
	// rest is written, however slow the machine.
	if !testsupport.Until(15*time.Second, func() bool { return countLines(t, p.out) > 0 }) {
		t.Fatal("no event written from the first half")
	}
	cfg := p.cmd.Args[2]
	b, _ := os.ReadFile(cfg)
	second := filepath.Join(filepath.Dir(p.out), "second.json")
	writeFile(t, cfg, string(b)+fmt.Sprintf("[[sink]]\nname = \"second\"\ntype = \"file\"\n[sink.file]\npath = %q\n", second))
	_ = p.cmd.Process.Signal(syscall.SIGHUP)
	if !testsupport.Until(15*time.Second, func() bool { return strings.Contains(p.stderr.String(), "SIGHUP: config reloaded") }) {
		t.Fatalf("no reload logged:\n%s", p.stderr.String())
	}
	if _, err := io.WriteString(p.stdin, strings.Join(lines[half:], "\n")+"\n"); err != nil {
		t.Fatal(err)
	}
	p.stdin.Close()
	if err := p.cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if got := countLines(t, p.out); got != want {
		t.Errorf("first sink has %d events, want %d", got, want)
	}
	if n := countLines(t, second); n == 0 || n >= want {
		t.Errorf("second sink has %d events, want some but fewer than %d", n, want)
	}
	validateFile(t, p.out)
	validateFile(t, second)
}

// TestFormatMismatchIsFatal: a plugins.d format that does not match the
// config's [input] format (text lines into format = "binary", a binary
// frame into format = "string") makes the plugin exit 1 with an error
// naming both formats, instead of exiting 0 with nothing written.
func TestFormatMismatchIsFatal(t *testing.T) {
	bin := testsupport.PluginBinary(t)
	text := strings.Join(captureLines(t)[:20], "\n") + "\n"
	payload := "audit(1.000:1): arch=c000003e syscall=59 success=yes"
	frame := binary.LittleEndian.AppendUint32(nil, 0)
	frame = binary.LittleEndian.AppendUint32(frame, 16)
	frame = binary.LittleEndian.AppendUint32(frame, 1300)
	frame = binary.LittleEndian.AppendUint32(frame, uint32(len(payload)))
	frame = append(frame, payload...)
	for _, c := range []struct{ config, stream, in string }{
		{"binary", "string", text},
		{"string", "binary", string(frame)},
	} {
		t.Run(c.config, func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "events.json")
			cfg := filepath.Join(dir, "config.toml")
			writeFile(t, cfg, fmt.Sprintf("user = \"root\"\nstate_dir = %q\n[input]\nformat = %q\n[log]\nsyslog = false\n"+
				"[[sink]]\ntype = \"file\"\n[sink.file]\npath = %q\n", dir, c.config, out))
			cmd, stdin, stderr := runPlugin(t, bin, cfg)
			if _, err := io.WriteString(stdin, c.in); err != nil {
				t.Fatal(err)
			}
			stdin.Close()
			err := cmd.Wait()
			if code := cmd.ProcessState.ExitCode(); code != 1 {
				t.Errorf("exit %v (code %d), want 1", err, code)
			}
			want := `input format mismatch: [input] format is \"` + c.config + `\" but the stream is in ` + c.stream + ` format`
			if !strings.Contains(stderr.String(), "level=ERROR") || !strings.Contains(stderr.String(), want) {
				t.Errorf("stderr lacks an ERROR line with %q:\n%s", want, stderr)
			}
			if n := countLines(t, out); n != 0 {
				t.Errorf("%d events written", n)
			}
		})
	}
}

// TestBadConfigNamesFileAndLine: the plugin refuses a broken config with an
// error naming file and line.
func TestBadConfigNamesFileAndLine(t *testing.T) {
	dir := t.TempDir()
	bin := testsupport.PluginBinary(t)
	cfg := filepath.Join(dir, "bad.toml")
	writeFile(t, cfg, "[input]\nformat = \"string\"\nmax_lines = 3\n")
	out, err := exec.Command(bin, "check-config", cfg).CombinedOutput()
	if err == nil {
		t.Fatal("check-config accepted an unknown key")
	}
	if !strings.Contains(string(out), cfg+":3:") || !strings.Contains(string(out), "max_lines") {
		t.Errorf("error %q does not name %s:3 and the key", out, cfg)
	}
}

// TestSIGHUPRestartKeysAndErrorLog: a SIGHUP whose new config changes
// settings SIGHUP does not apply logs one warning naming each of them,
// and the parse-error log is reopened (after rotation moved it, rejected
// lines go to a new file at its path).
func TestSIGHUPRestartKeysAndErrorLog(t *testing.T) {
	dir := t.TempDir()
	bin := testsupport.PluginBinary(t)
	errs := filepath.Join(dir, "errors.log")
	base := fmt.Sprintf("user = \"root\"\nstate_dir = %q\n[status]\ninterval = \"0s\"\n[[sink]]\ntype = \"file\"\n[sink.file]\npath = %q\n",
		dir, filepath.Join(dir, "events.json"))
	cfg := filepath.Join(dir, "config.toml")
	writeFile(t, cfg, base+fmt.Sprintf("[log]\nsyslog = false\nparse_errors = %q\n[input]\nmax_line_bytes = 65536\n", errs))
	cmd, stdin, stderr := runPlugin(t, bin, cfg)
	nonEmpty := func(path string) bool { b, _ := os.ReadFile(path); return len(b) > 0 }
	if _, err := io.WriteString(stdin, "not an audit record one\n"); err != nil {
		t.Fatal(err)
	}
	if !testsupport.Until(5*time.Second, func() bool { return nonEmpty(errs) }) {
		t.Fatalf("no parse-error entry; stderr:\n%s", stderr.String())
	}
	if err := os.Rename(errs, errs+".1"); err != nil {
		t.Fatal(err)
	}
	writeFile(t, cfg, base+fmt.Sprintf("[log]\nsyslog = false\nlevel = \"debug\"\nparse_errors = %q\n[input]\nmax_line_bytes = 131072\n[enrich]\nworkers = 1\n", errs))
	_ = cmd.Process.Signal(syscall.SIGHUP)
	if !testsupport.Until(5*time.Second, func() bool { return strings.Contains(stderr.String(), "SIGHUP: config reloaded") }) {
		t.Fatalf("no reload; stderr:\n%s", stderr.String())
	}
	if want := `msg="SIGHUP: changed settings that apply only at the next start" keys=input.max_line_bytes,log.level`; strings.Count(stderr.String(), want) != 1 {
		t.Errorf("stderr lacks one %s:\n%s", want, stderr.String())
	}
	if _, err := io.WriteString(stdin, "not an audit record two\n"); err != nil {
		t.Fatal(err)
	}
	if !testsupport.Until(5*time.Second, func() bool { return nonEmpty(errs) }) {
		t.Errorf("the parse-error log was not reopened at its path; stderr:\n%s", stderr.String())
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(errs); !strings.Contains(string(b), "record two") || strings.Contains(string(b), "record one") {
		t.Errorf("reopened parse-error log holds %q", b)
	}
}

// TestSIGHUPEmptyConfigKept: a config file read empty on SIGHUP (caught
// between the truncation and the write of an in-place rewrite) is refused
// with one error line, and the running sinks go on; it is not taken for
// the defaults, whose only sink is stdout (TestSIGHUPStorm once saw a
// network sink's series start over after such a read).
func TestSIGHUPEmptyConfigKept(t *testing.T) {
	dir := t.TempDir()
	bin := testsupport.PluginBinary(t)
	out := filepath.Join(dir, "events.json")
	cfg := filepath.Join(dir, "config.toml")
	writeFile(t, cfg, fmt.Sprintf("user = \"root\"\nstate_dir = %q\n[log]\nsyslog = false\n[status]\ninterval = \"0s\"\n[[sink]]\ntype = \"file\"\n[sink.file]\npath = %q\n", dir, out))
	cmd, stdin, stderr := runPlugin(t, bin, cfg)
	lines := captureLines(t)
	half := len(lines) / 2
	if _, err := io.WriteString(stdin, strings.Join(lines[:half], "\n")+"\n"); err != nil {
		t.Fatal(err)
	}
	writeFile(t, cfg, "\n")
	_ = cmd.Process.Signal(syscall.SIGHUP)
	if !testsupport.Until(5*time.Second, func() bool { return strings.Contains(stderr.String(), "the file is empty") }) {
		t.Fatalf("no refusal of the empty config; stderr:\n%s", stderr.String())
	}
	if strings.Contains(stderr.String(), "SIGHUP: config reloaded") {
		t.Fatalf("the empty config was applied; stderr:\n%s", stderr.String())
	}
	if _, err := io.WriteString(stdin, strings.Join(lines[half:], "\n")+"\n"); err != nil {
		t.Fatal(err)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%v; stderr:\n%s", err, stderr.String())
	}
	if got, want := countLines(t, out), expectedEvents(t); got != want {
		t.Errorf("the file sink got %d documents, want %d (all of them, across the refused reload); stderr:\n%s", got, want, stderr.String())
	}
}

// TestPluginRejectedLineNumber: plugin mode logs a rejected line with its
// number in the stream since the start (line=), counted across reads and
// batches, and names no file.
func TestPluginRejectedLineNumber(t *testing.T) {
	dir := t.TempDir()
	bin := testsupport.PluginBinary(t)
	cfg := filepath.Join(dir, "config.toml")
	writeFile(t, cfg, fmt.Sprintf("user = \"root\"\nstate_dir = %q\n[log]\nsyslog = false\n[status]\ninterval = \"0s\"\n"+
		"[[sink]]\ntype = \"file\"\n[sink.file]\npath = %q\n", dir, filepath.Join(dir, "events.json")))
	cmd, stdin, stderr := runPlugin(t, bin, cfg)
	good := captureLines(t)[:10]
	if _, err := io.WriteString(stdin, strings.Join(good, "\n")+"\n"); err != nil { // lines 1-10
		t.Fatal(err)
	}
	if !testsupport.Until(5*time.Second, func() bool { return countLines(t, filepath.Join(dir, "events.json")) > 0 }) {
		t.Fatalf("the first lines made no event; stderr:\n%s", stderr.String())
	}
	// Line 11 rejected, 12 empty (skipped), 13 rejected.
	if _, err := io.WriteString(stdin, "not an audit record\n\ntype=SYSCALL msg=audit(1.000:1): exe=\"/bin/x\n"); err != nil {
		t.Fatal(err)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range strings.Split(stderr.String(), "\n") {
		if !strings.Contains(l, `msg="rejected input"`) {
			continue
		}
		if strings.Contains(l, " file=") {
			t.Errorf("plugin mode names a file: %s", l)
		}
		for _, f := range strings.Fields(l) {
			if strings.HasPrefix(f, "line=") || strings.HasPrefix(f, "reason=") {
				got = append(got, f)
			}
		}
	}
	if want := "line=11 reason=no_type line=13 reason=truncated"; strings.Join(got, " ") != want {
		t.Errorf("rejected input logged as %q, want %q; stderr:\n%s", strings.Join(got, " "), want, stderr.String())
	}
}
