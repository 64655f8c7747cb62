package plugin

import (
	"bytes"
	"context"
	"log/slog"
	"log/syslog"
	"os"
	"strings"
	"sync"
)

// NewLogger returns the program's logger: the local syslog (daemon
// facility, tag audisp-enrich) when useSyslog, plus stderr when it is a
// terminal or when syslog is unavailable or off. Each syslog entry's
// severity is its record's level (ERROR err, WARN warning, INFO info,
// DEBUG debug), never read from the text, which can hold input.
func NewLogger(level string, useSyslog bool) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	var hs []slog.Handler
	if useSyslog {
		if w, err := syslogDial(); err == nil {
			hs = append(hs, newSyslogHandler(w, lv))
		}
	}
	if len(hs) == 0 || isTerminal(os.Stderr) {
		hs = append(hs, slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))
	}
	if len(hs) == 1 {
		return slog.New(hs[0])
	}
	return slog.New(fanHandler(hs))
}

// SyslogStartError sends an error of plugin mode that came before its
// logger (the config did not load) to the local syslog at err severity,
// one entry per line of err, as "MSG err=LINE": auditd leaves the
// plugin's stderr unusable, so syslog is where it is seen. Without
// syslog it does nothing (the caller writes err to stderr).
func SyslogStartError(msg string, err error) {
	w, e := syslogDial()
	if e != nil {
		return
	}
	defer w.Close()
	log := slog.New(newSyslogHandler(w, slog.LevelError))
	for _, l := range strings.Split(strings.TrimRight(err.Error(), "\n"), "\n") {
		log.Error(msg, "err", l)
	}
}

// syslogDial opens the local syslog; tests point it at their own socket.
var syslogDial = func() (*syslog.Writer, error) {
	return syslog.New(syslog.LOG_DAEMON|syslog.LOG_INFO, progName)
}

// syslogHandler formats records as slog's text handler does and sends
// each as one syslog entry whose severity is the record's level. The
// handlers derived by WithAttrs and WithGroup share its buffer and lock.
type syslogHandler struct {
	text slog.Handler // writes into *buf
	mu   *sync.Mutex
	buf  *bytes.Buffer
	w    *syslog.Writer
}

func newSyslogHandler(w *syslog.Writer, lv slog.Level) *syslogHandler {
	buf := new(bytes.Buffer)
	return &syslogHandler{text: slog.NewTextHandler(buf, &slog.HandlerOptions{Level: lv}), mu: new(sync.Mutex), buf: buf, w: w}
}

func (h *syslogHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.text.Enabled(ctx, l)
}

// Handle sends r with the syslog severity of r.Level.
func (h *syslogHandler) Handle(ctx context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.buf.Reset()
	if err := h.text.Handle(ctx, r); err != nil {
		return err
	}
	msg := strings.TrimSuffix(h.buf.String(), "\n")
	switch {
	case r.Level >= slog.LevelError:
		return h.w.Err(msg)
	case r.Level >= slog.LevelWarn:
		return h.w.Warning(msg)
	case r.Level >= slog.LevelInfo:
		return h.w.Info(msg)
	default:
		return h.w.Debug(msg)
	}
}

func (h *syslogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.text = h.text.WithAttrs(as)
	return &c
}

func (h *syslogHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.text = h.text.WithGroup(name)
	return &c
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

type fanHandler []slog.Handler

func (f fanHandler) Enabled(ctx context.Context, l slog.Level) bool {
	for _, h := range f {
		if h.Enabled(ctx, l) {
			return true
		}
	}
	return false
}

func (f fanHandler) Handle(ctx context.Context, r slog.Record) error {
	for _, h := range f {
		if h.Enabled(ctx, r.Level) {
			_ = h.Handle(ctx, r.Clone())
		}
	}
	return nil
}

func (f fanHandler) WithAttrs(as []slog.Attr) slog.Handler {
	out := make(fanHandler, len(f))
	for i, h := range f {
		out[i] = h.WithAttrs(as)
	}
	return out
}

func (f fanHandler) WithGroup(name string) slog.Handler {
	out := make(fanHandler, len(f))
	for i, h := range f {
		out[i] = h.WithGroup(name)
	}
	return out
}
