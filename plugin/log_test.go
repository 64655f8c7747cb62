package plugin

import (
	"log/syslog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/conf"
)

// syslogSocket points syslogDial at a unix datagram socket of the test
// for the test's duration and returns a function reading its next
// entry ("<PRI>... audisp-enrich[PID]: MSG").
func syslogSocket(t *testing.T) func() string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "log")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	old := syslogDial
	syslogDial = func() (*syslog.Writer, error) {
		return syslog.Dial("unixgram", path, syslog.LOG_DAEMON|syslog.LOG_INFO, progName)
	}
	t.Cleanup(func() { syslogDial = old })
	return func() string {
		t.Helper()
		b := make([]byte, 64<<10)
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := conn.Read(b)
		if err != nil {
			t.Fatalf("no syslog entry: %v", err)
		}
		return string(b[:n])
	}
}

// TestSyslogSeverity: an entry's syslog severity is its record's level;
// text in the message or its attributes (input an attacker typed, such
// as a rejected line holding "level=ERROR") does not change it.
func TestSyslogSeverity(t *testing.T) {
	next := syslogSocket(t)
	log := NewLogger("debug", true)
	const daemon = 3 << 3
	for _, tc := range []struct {
		log  func(string, ...any)
		pri  int
		attr string
	}{
		{log.Info, daemon + 6, "x level=ERROR y"},
		{log.Debug, daemon + 7, "level=WARN"},
		{log.Warn, daemon + 4, "level=DEBUG"},
		{log.Error, daemon + 3, "level=INFO"},
		{log.With("raw", "level=ERROR").Info, daemon + 6, "z"},
	} {
		tc.log("rejected line", "raw", tc.attr)
		got := next()
		pri, _, _ := strings.Cut(got, ">")
		if want := "<" + strconv.Itoa(tc.pri); pri != want || !strings.Contains(got, "rejected line") {
			t.Errorf("entry %q: priority %s>, want %s>", got, pri, want)
		}
	}
}

// TestSyslogStartError: a config that does not load in plugin mode is
// sent to syslog at err severity, one entry per problem, naming the file
// and line.
func TestSyslogStartError(t *testing.T) {
	next := syslogSocket(t)
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, []byte("[log]\nlevle = \"warn\"\n[input]\nformat = \"strng\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := conf.Load(path)
	if err == nil {
		t.Fatal("a bad config loaded")
	}
	SyslogStartError("config failed to load", err)
	for _, want := range []string{path + ":2:1: unknown key", path + ":4:10: input.format"} {
		got := next()
		if !strings.HasPrefix(got, "<27>") || !strings.Contains(got, "config failed to load") || !strings.Contains(got, want) {
			t.Errorf("syslog entry %q: want <27> and %q", got, want)
		}
	}
}
