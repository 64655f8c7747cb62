package plugin

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestErrorLogStreamFlags: a stream flag (crlf, no_newline: the line was
// processed) is logged as flagged, not rejected, and takes no share of
// parse_error_rate, so the rejections of the same second are logged;
// rejections over the rate are still suppressed and counted, and reported
// when the log closes, with the main log and with a parse-error file.
// Every entry gives the line's position: file= (replay) and line=, each
// when known.
func TestErrorLogStreamFlags(t *testing.T) {
	for _, toFile := range []bool{false, true} {
		var buf bytes.Buffer
		path := ""
		if toFile {
			path = filepath.Join(t.TempDir(), "errors.log")
		}
		e, err := newErrorLog(path, 1, slog.New(slog.NewTextHandler(&buf, nil)))
		if err != nil {
			t.Fatal(err)
		}
		e.flag("crlf", (&InputError{Reason: "crlf"}).Error(), "type=EOE msg=audit(1.000:1): ", inputPos{file: "a b.log", line: 1})
		e.flag("no_newline", (&InputError{Reason: "no_newline", Offset: 9}).Error(), "type=EOE", inputPos{file: "-", line: 2})
		e.report("truncated", "value cut", "type=SYSCALL a=\"x", inputPos{line: 3})
		e.report("too_long", "line 4", "xxxx", inputPos{line: 4}) // over the rate of 1: suppressed
		e.close()
		out := buf.String()
		if toFile {
			b, _ := os.ReadFile(path)
			out = string(b)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 4 {
			t.Fatalf("file=%v: %d entries, want 4 (crlf, no_newline, truncated, suppressed):\n%s", toFile, len(lines), out)
		}
		for i, want := range []string{"reason=crlf ", "reason=no_newline ", "reason=truncated ", "line=4 reason=suppressed "} {
			if !strings.Contains(lines[i], want) {
				t.Errorf("file=%v: entry %d %q lacks %s", toFile, i, lines[i], want)
			}
		}
		// The position: file= as given (quoted when it has to be: slog
		// quotes only then, the file always), line= when known.
		for i, want := range []string{`file="a b.log" line=1 `, "file=- line=2 ", "line=3 "} {
			if toFile && i == 1 {
				want = `file="-" line=2 `
			}
			if !strings.Contains(lines[i], want) {
				t.Errorf("file=%v: entry %d %q lacks %s", toFile, i, lines[i], want)
			}
		}
		if strings.Contains(lines[2], "file=") {
			t.Errorf("file=%v: plugin mode's entry names a file: %s", toFile, lines[2])
		}
		if !strings.Contains(lines[0], "the lines are processed") || !strings.Contains(lines[1], "the line is processed") {
			t.Errorf("file=%v: the flags do not say the lines are processed:\n%s", toFile, out)
		}
		if !toFile && (!strings.Contains(lines[0], `msg="flagged input"`) || !strings.Contains(lines[2], `msg="rejected input"`)) {
			t.Errorf("flag or rejection worded wrongly:\n%s", out)
		}
		if !strings.Contains(lines[3], "suppressed_before=1") || !strings.Contains(lines[3], "1 rejected lines or frames not logged (over parse_error_rate): line 4") {
			t.Errorf("file=%v: the suppressed entry does not say what it counts: %s", toFile, lines[3])
		}
	}
}
