package packages

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/enrich/hashes"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
)

func testLog(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) { w.t.Log(string(b)); return len(b), nil }

// fileSHA returns the real SHA-256 and SHA-1 of a file, in hex.
func fileSHA(t testing.TB, p string) (string, string) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h2, h1 := sha256.New(), sha1.New()
	if _, err := io.Copy(io.MultiWriter(h2, h1), f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h2.Sum(nil)), hex.EncodeToString(h1.Sum(nil))
}

// needDpkg skips unless this machine has a dpkg database.
func needDpkg(t testing.TB) {
	t.Helper()
	if _, err := os.Stat("/var/lib/dpkg/status"); err != nil {
		t.Skip("no dpkg database on this machine:", err)
	}
}

// openEnricher starts an enricher for cfg and waits until its index is
// complete.
func openEnricher(t testing.TB, cfg Config) *Enricher {
	t.Helper()
	e := New(cfg, testLog(t), &metrics.Registry{})
	t.Cleanup(e.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := e.Index().Wait(ctx, nil); err != nil {
		t.Fatal(err)
	}
	return e
}

func testConfig(t testing.TB, paths ...string) Config {
	cfg := DefaultConfig()
	cfg.Enabled = true
	cfg.Paths = paths
	cfg.StateDir = t.TempDir()
	return cfg
}

var serial uint32

// judge builds an event from a real INTEGRITY_RULE line for file with the
// digest algo:hexDigest, runs the hashes enricher and then e, and returns
// the event.
func judge(t testing.TB, e *Enricher, file, algo, hexDigest string) *audit.Event {
	t.Helper()
	serial++
	line := fmt.Sprintf(`type=INTEGRITY_RULE msg=audit(1764900000.123:%d): file="%s" hash="%s:%s" ppid=1 pid=4242 auid=0 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts0 ses=1 comm="bash" exe="/usr/bin/bash" res=1`,
		serial, file, algo, hexDigest)
	var p audit.Parser
	rec, err := p.Parse(line)
	if err != nil {
		t.Fatal(err)
	}
	ev := &audit.Event{Records: []*audit.Record{rec}}
	if err := hashes.New(&metrics.Registry{}).Enrich(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if err := e.Enrich(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

func wantPackage(t testing.TB, ev *audit.Event, status, name, orig string) {
	t.Helper()
	p := ev.Package
	if p == nil {
		t.Fatalf("no package result for %+v", ev.Hashes)
	}
	if p.Status != status || p.Name != name || p.OriginalPath != orig {
		t.Fatalf("package = %+v, want status %s name %q original %q", *p, status, name, orig)
	}
}
