package plugin

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/conf"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
)

// reloadLines is the bundled capture, cut in two at an event boundary.
func reloadLines(t *testing.T) (first, second []string) {
	t.Helper()
	b, err := os.ReadFile("testdata/capture.log")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	half := len(lines) / 2
	for half < len(lines) && !strings.Contains(lines[half], "type=EOE") {
		half++
	}
	return lines[:half+1], lines[half+1:]
}

// udpPeer is a syslog-over-UDP destination: a real socket that takes
// every datagram.
func udpPeer(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 1<<16)
		for {
			if _, _, err := c.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	return c.LocalAddr().String()
}

// writeCA writes a self-signed CA certificate in PEM to path.
func writeCA(t *testing.T, path string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "reload test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
}

func parseConfig(t *testing.T, text string) *conf.Config {
	t.Helper()
	cfg, err := conf.Parse("reload.toml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func countDocs(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

// TestReloadFailureKeepsPipeline: a reload whose new config cannot be
// built (a blocklist file deleted, a rules file that cannot be read, a
// changed sink whose TLS files vanished) fails with an error and leaves the
// running pipeline as it was: every event still reaches the sinks, and the
// counters of a network sink do not fall back. Before swap-on-success the
// failed build was followed by a rebuild of the old config, which failed
// for the same reason and left no pool (the next event panicked).
func TestReloadFailureKeepsPipeline(t *testing.T) {
	first, second := reloadLines(t)
	cases := []struct {
		name string
		// config returns the sections under test (dir is the test's).
		config func(dir string) string
		// breakIt damages the files the running config uses.
		breakIt func(t *testing.T, dir string)
		// change is appended to the config for the reload ("" reloads the
		// same config); wantErr says whether the reload must fail.
		change  string
		wantErr string
	}{
		{
			name: "missing blocklist file",
			config: func(dir string) string {
				must(t, os.WriteFile(filepath.Join(dir, "block.txt"), []byte(strings.Repeat("0", 64)+" test\n"), 0o644))
				return fmt.Sprintf("[enrich.blocklist]\n[[enrich.blocklist.lists]]\nname = \"local\"\npath = %q\n", filepath.Join(dir, "block.txt"))
			},
			breakIt: func(t *testing.T, dir string) { must(t, os.Remove(filepath.Join(dir, "block.txt"))) },
			wantErr: "block.txt",
		},
		{
			name: "unreadable rules file",
			config: func(dir string) string {
				must(t, os.WriteFile(filepath.Join(dir, "rules.toml"), nil, 0o644))
				return fmt.Sprintf("[enrich.hunt]\nrules_file = %q\n", filepath.Join(dir, "rules.toml"))
			},
			breakIt: func(t *testing.T, dir string) {
				// A directory where the file was: open works, read fails.
				must(t, os.Remove(filepath.Join(dir, "rules.toml")))
				must(t, os.Mkdir(filepath.Join(dir, "rules.toml"), 0o755))
			},
			wantErr: "rules.toml",
		},
		{
			name:    "changed sink whose TLS files vanished",
			config:  func(dir string) string { writeCA(t, filepath.Join(dir, "ca.pem")); return tlsSink(dir) },
			breakIt: func(t *testing.T, dir string) { must(t, os.Remove(filepath.Join(dir, "ca.pem"))) },
			change:  "app_name = \"changed\"\n",
			wantErr: "ca.pem",
		},
		{
			// The sink did not change, so it keeps running with the
			// certificates it loaded; the reload succeeds.
			name:    "unchanged sink whose TLS files vanished",
			config:  func(dir string) string { writeCA(t, filepath.Join(dir, "ca.pem")); return tlsSink(dir) },
			breakIt: func(t *testing.T, dir string) { must(t, os.Remove(filepath.Join(dir, "ca.pem"))) },
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "events.json")
			base := fmt.Sprintf(`state_dir = %q
[log]
syslog = false
[[sink]]
name = "events"
type = "file"
[sink.file]
path = %q
[[sink]]
name = "udp"
type = "syslog"
[sink.buffer]
type = "memory"
[sink.syslog]
transport = "udp"
address = %q
`, dir, out, udpPeer(t))
			text := base + tc.config(dir)
			cfg := parseConfig(t, text)
			next := parseConfig(t, text+tc.change)
			reg := &metrics.Registry{}
			p, err := NewPipeline(cfg, slog.New(slog.DiscardHandler), reg, true)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range first {
				p.handle(l, inputPos{})
			}
			p.Idle()
			acked := waitAcked(t, p, reg, "udp")
			tc.breakIt(t, dir)
			err = p.Reload(next)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("reload failed: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("reload error %v, want one naming %s", err, tc.wantErr)
			}
			for _, l := range second {
				p.handle(l, inputPos{})
			}
			p.Idle()
			if after := waitAcked(t, p, reg, "udp"); after < acked {
				t.Errorf("sink_acked_total fell from %d to %d across the reload", acked, after)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			p.Close(ctx)
			if got, want := countDocs(t, out), replayCount(t); got != want {
				t.Errorf("%d documents written, want %d (as without a reload)", got, want)
			}
		})
	}
}

func tlsSink(dir string) string {
	return fmt.Sprintf(`[[sink]]
name = "tls"
type = "syslog"
[sink.buffer]
type = "memory"
[sink.syslog]
transport = "tls"
address = "127.0.0.1:1"
tls_ca = %q
`, filepath.Join(dir, "ca.pem"))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// waitAcked waits until the sink's buffer is empty and checks that every
// document published to it was acknowledged or dropped; it returns
// sink_acked_total.
func waitAcked(t *testing.T, p *Pipeline, reg *metrics.Registry, sink string) uint64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, st := range p.SinkStats() {
			if st.Sink != sink {
				continue
			}
			var dropped uint64
			for _, n := range st.Dropped {
				dropped += n
			}
			pub := uint64(reg.Snapshot()[`audisp_enrich_sink_published_total{sink="`+sink+`"}`])
			if st.Queued == 0 && pub > 0 && pub == st.Acked+dropped {
				return st.Acked
			}
			if time.Now().After(deadline) {
				t.Fatalf("sink %s: published %d, acked %d, queued %d, dropped %d: published != acked + queued + dropped or not delivered", sink, pub, st.Acked, st.Queued, dropped)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// replayCount is the number of documents the capture makes without any
// reload (a file sink alone).
func replayCount(t *testing.T) int {
	t.Helper()
	dir := t.TempDir()
	out := filepath.Join(dir, "events.json")
	cfg := parseConfig(t, fmt.Sprintf("state_dir = %q\n[log]\nsyslog = false\n[[sink]]\ntype = \"file\"\n[sink.file]\npath = %q\n", dir, out))
	if err := Replay(context.Background(), cfg, slog.New(slog.DiscardHandler), []string{"testdata/capture.log"}, ReplayOptions{}); err != nil {
		t.Fatal(err)
	}
	return countDocs(t, out)
}
