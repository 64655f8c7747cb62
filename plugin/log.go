package plugin

import (
	"context"
	"log/slog"
	"log/syslog"
	"os"
	"strings"
)

// NewLogger returns the program's logger: the local syslog (daemon
// facility, tag audisp-enrich) when useSyslog, plus stderr when it is a
// terminal or when syslog is unavailable or off.
func NewLogger(level string, useSyslog bool) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	var hs []slog.Handler
	if useSyslog {
		if w, err := syslog.New(syslog.LOG_DAEMON|syslog.LOG_INFO, progName); err == nil {
			hs = append(hs, slog.NewTextHandler(&syslogWriter{w}, &slog.HandlerOptions{Level: lv}))
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

type syslogWriter struct{ w *syslog.Writer }

// Write sends one slog line with the syslog severity of its level.
func (s *syslogWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSuffix(string(p), "\n")
	var err error
	switch {
	case strings.Contains(msg, "level=ERROR"):
		err = s.w.Err(msg)
	case strings.Contains(msg, "level=WARN"):
		err = s.w.Warning(msg)
	case strings.Contains(msg, "level=DEBUG"):
		err = s.w.Debug(msg)
	default:
		err = s.w.Info(msg)
	}
	return len(p), err
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
