package plugin

import (
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/safeopen"
)

// errorLog records rejected input, and flagged input (lines processed
// all the same), with their raw bytes, rate limited: at most rate
// entries per second of each kind, the rest only counted (and the count
// of the suppressed ones reported with the next logged entry of their
// kind, or when the log closes). Rejections and flags have a budget each,
// so that flags never suppress a rejection; stream flags (see streamFlags)
// take no share of either. It counts every line it is told of, logged or
// not, by reason (tally). Safe for concurrent use.
type errorLog struct {
	mu       sync.Mutex
	path     string // the file's path; "" logs through log instead
	f        *os.File
	log      *slog.Logger
	rate     int
	rejected budget
	flagged  budget
	counts   Tally
}

// budget is one kind's share of the rate: its entries logged in the
// current second, and those suppressed since its last logged one.
type budget struct {
	window     int64
	inWindow   int
	suppressed int
	first      inputPos // where the first and the last suppressed lines were
	last       inputPos
}

// take reports whether an entry at at may be logged now, at most rate a
// second, and then how many were suppressed before it (which it resets);
// otherwise it counts at as suppressed.
func (b *budget) take(rate int, at inputPos) (suppressedBefore int, ok bool) {
	now := time.Now().Unix()
	if now != b.window {
		b.window, b.inWindow = now, 0
	}
	if b.inWindow >= rate {
		if b.suppressed == 0 {
			b.first = at
		}
		b.suppressed++
		b.last = at
		return 0, false
	}
	b.inWindow++
	n := b.suppressed
	b.suppressed = 0
	return n, true
}

// Tally counts the lines and frames the error log was told of, logged or
// not, by reason: Rejected were not processed (an empty line is counted
// here, never logged); Flagged were processed all the same, and each is
// also counted as parsed or rejected.
type Tally struct {
	Rejected map[string]uint64
	Flagged  map[string]uint64
}

func (t *Tally) add(reason string, flagged bool) {
	m := &t.Rejected
	if flagged {
		m = &t.Flagged
	}
	if *m == nil {
		*m = map[string]uint64{}
	}
	(*m)[reason]++
}

// Total returns the sum of the counts of m.
func Total(m map[string]uint64) uint64 {
	var n uint64
	for _, c := range m {
		n += c
	}
	return n
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

// openErrorFile opens the parse-error log for appending. Root opens it at
// start, in a directory the service user may own (see package safeopen).
func openErrorFile(path string) (*os.File, error) {
	f, err := safeopen.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
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
// line=, each when known), within the rejections' budget.
func (e *errorLog) report(reason, msg, raw string, at inputPos) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.counts.add(reason, false)
	if n, ok := e.rejected.take(e.rate, at); ok {
		e.write("rejected input", reason, msg, raw, at, n)
	}
}

// flag logs one line or frame that is processed all the same, as
// "flagged input", within the flags' budget; a stream flag (reported once
// per stream: see streamFlags) takes no share of it, and its
// suppressed_before is 0.
func (e *errorLog) flag(reason, msg, raw string, at inputPos) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.counts.add(reason, true)
	n := 0
	if _, stream := streamFlags[reason]; !stream {
		var ok bool
		if n, ok = e.flagged.take(e.rate, at); !ok {
			return
		}
	}
	e.write("flagged input", reason, msg, raw, at, n)
}

// count counts a line that is not to be logged (an InputError that is
// Silent): rejected, or processed when flagged.
func (e *errorLog) count(reason string, flagged bool) {
	e.mu.Lock()
	e.counts.add(reason, flagged)
	e.mu.Unlock()
}

// tally returns a copy of the counts so far.
func (e *errorLog) tally() Tally {
	e.mu.Lock()
	defer e.mu.Unlock()
	return Tally{Rejected: maps.Clone(e.counts.Rejected), Flagged: maps.Clone(e.counts.Flagged)}
}

// write writes one entry: what is "rejected input" or "flagged input"
// (the main log's message; the file's msg says it through the
// InputError's text), suppressed the entries of its kind suppressed
// before it. Called with mu held.
func (e *errorLog) write(what, reason, msg, raw string, at inputPos, suppressed int) {
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
	args := make([]any, 0, 12)
	if at.file != "" {
		args = append(args, "file", at.file)
	}
	if at.line > 0 {
		args = append(args, "line", at.line)
	}
	e.log.Warn(what, append(args, "reason", reason, "err", msg, "raw", raw, "suppressed_before", suppressed)...)
}

// close reports, for each kind, the entries suppressed since its last
// logged one (one entry each, reason=suppressed, at the first suppressed
// line, saying how many and which lines), then closes the file. The
// error log is not used after.
func (e *errorLog) close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, k := range []struct {
		what string
		b    *budget
	}{{"rejected", &e.rejected}, {"flagged", &e.flagged}} {
		if k.b.suppressed == 0 {
			continue
		}
		msg := fmt.Sprintf("%d %s lines or frames not logged (over parse_error_rate)%s", k.b.suppressed, k.what, span(k.b.first, k.b.last))
		e.write(k.what+" input suppressed", "suppressed", msg, "", k.b.first, k.b.suppressed)
		k.b.suppressed = 0
	}
	if e.f != nil {
		e.f.Close()
	}
}

// span says which lines, from first to last, when their numbers are known.
func span(first, last inputPos) string {
	switch {
	case first.line == 0 || last.line == 0:
		return ""
	case first == last:
		return fmt.Sprintf(": line %d", first.line)
	case first.file != last.file:
		return fmt.Sprintf(": from line %d to line %d of %s", first.line, last.line, last.file)
	}
	return fmt.Sprintf(": lines %d to %d", first.line, last.line)
}
