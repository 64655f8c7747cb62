package plugin

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// errorLog records rejected input with its raw bytes, rate limited: at most
// rate entries per second, the rest only counted (and the count of the
// suppressed ones reported with the next logged entry); stream flags
// (see report) are outside the rate. Safe for concurrent use.
type errorLog struct {
	mu         sync.Mutex
	path       string // the file's path; "" logs through log instead
	f          *os.File
	log        *slog.Logger
	rate       int
	window     int64
	inWindow   int
	suppressed int
}

// newErrorLog returns the rejected-input log writing to path ("": to log),
// at most rate entries a second. It makes path's directory when it is
// missing (replay, as the user running it); plugin mode has made it before
// (makeOutputDirs), for the service user, who must create the file again
// after log rotation (reopen).
func newErrorLog(path string, rate int, log *slog.Logger) (*errorLog, error) {
	e := &errorLog{log: log, rate: max(rate, 1), path: path}
	if path != "" {
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return nil, err
		}
		f, err := openErrorFile(path)
		if err != nil {
			return nil, err
		}
		e.f = f
	}
	return e, nil
}

func openErrorFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("parse-error log: %w", err)
	}
	return f, nil
}

// reopen opens the file again by its path (after log rotation moved it)
// and writes there from now on. When that fails (the service user may
// not create files in its directory) it keeps writing to the file it has
// and returns the error.
func (e *errorLog) reopen() error {
	if e.path == "" {
		return nil
	}
	f, err := openErrorFile(e.path)
	if err != nil {
		return err
	}
	e.mu.Lock()
	old := e.f
	e.f = f
	e.mu.Unlock()
	return old.Close()
}

// inputPos is where a line was read: file is the path replay was given
// ("-" for stdin; "" in plugin mode), line its 1-based number in that
// file (after decompression) or in plugin mode's stream since the start;
// 0 when not known (binary frames are not lines).
type inputPos struct {
	file string
	line int64
}

// report logs one rejected line or frame, with its position (file= and
// line=, each when known). A stream flag (a line that was repaired and
// processed, reported once per stream: see streamFlags) is logged as
// "flagged input" and takes no share of the rate, so that it never
// suppresses a rejection; suppressed_before is then 0.
func (e *errorLog) report(reason, msg, raw string, at inputPos) {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, flag := streamFlags[reason]
	suppressed := 0
	if !flag {
		now := time.Now().Unix()
		if now != e.window {
			e.window, e.inWindow = now, 0
		}
		if e.inWindow >= e.rate {
			e.suppressed++
			return
		}
		e.inWindow++
		suppressed, e.suppressed = e.suppressed, 0
	}
	if len(raw) > 4096 {
		raw = raw[:4096]
	}
	if e.f != nil {
		pos := ""
		if at.file != "" {
			pos += "file=" + strconv.Quote(at.file) + " "
		}
		if at.line > 0 {
			pos += "line=" + strconv.FormatInt(at.line, 10) + " "
		}
		fmt.Fprintf(e.f, "%s %sreason=%s suppressed_before=%d msg=%s raw=%s\n",
			time.Now().UTC().Format(time.RFC3339Nano), pos, reason, suppressed, strconv.Quote(msg), strconv.Quote(raw))
		return
	}
	what := "rejected input"
	if flag {
		what = "flagged input"
	}
	args := make([]any, 0, 12)
	if at.file != "" {
		args = append(args, "file", at.file)
	}
	if at.line > 0 {
		args = append(args, "line", at.line)
	}
	e.log.Warn(what, append(args, "reason", reason, "err", msg, "raw", raw, "suppressed_before", suppressed)...)
}

func (e *errorLog) close() {
	if e.f != nil {
		e.f.Close()
	}
}
