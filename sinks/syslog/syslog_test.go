package syslog

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
	"github.com/audisp-enrich/audisp-enrich/sinks"
)

var evilMeta = sinks.Meta{
	Node:     "host\"]\\x",
	Types:    []string{"SYSCALL", "PATH"},
	Keys:     []string{"k]\"\\", "k2\nX"},
	Severity: 3,
	Kind:     "event",
}

// evilValue holds raw CR, LF, NUL, GS and a forged syslog header.
func evilValue(name string) []byte {
	return []byte(`{"case":"` + name + `","evil":"a` + "\n<13>1 - forged - - - - FORGED\r\x00\x1d]\"\\" + `"}`)
}

// TestTransports sends normal, hostile and oversized messages over every
// transport, format and framing to one real rsyslogd and checks its files.
func TestTransports(t *testing.T) {
	certs := makeCerts(t)
	dir := t.TempDir()
	in := rsyslogInputs{
		udp: testsupport.FreePort(t, "udp"), tcp: testsupport.FreePort(t, "tcp"), tls: testsupport.FreePort(t, "tcp"),
		unix: filepath.Join(dir, "log.sock"), unixStream: filepath.Join(dir, "stream.sock"),
		tlsAuth: "x509/certvalid", certs: certs,
	}
	rs := startRsyslogIn(t, dir, in)
	cases := []struct {
		name string
		cfg  Config
	}{
		{"udp5424", Config{Transport: "udp", Address: fmt.Sprint("127.0.0.1:", in.udp)}},
		{"udp3164", Config{Transport: "udp", Format: "rfc3164", Address: fmt.Sprint("127.0.0.1:", in.udp)}},
		{"tcpoctet", Config{Transport: "tcp", Address: fmt.Sprint("127.0.0.1:", in.tcp)}},
		{"tcplf", Config{Transport: "tcp", Framing: "lf", Address: fmt.Sprint("127.0.0.1:", in.tcp)}},
		{"tcp3164lf", Config{Transport: "tcp", Framing: "lf", Format: "rfc3164", Address: fmt.Sprint("127.0.0.1:", in.tcp)}},
		{"tcp3164octet", Config{Transport: "tcp", Format: "rfc3164", Address: fmt.Sprint("127.0.0.1:", in.tcp)}},
		{"tls", Config{Transport: "tls", Address: fmt.Sprint("127.0.0.1:", in.tls), TLSFiles: sinks.TLSFiles{TLSCA: certs.ca,
			TLSCert: certs.clientCert, TLSKey: certs.clientKey, TLSServerName: "localhost"}}},
		{"unix", Config{Transport: "unix", Address: in.unix}},
		{"unixstream", Config{Transport: "unix_stream", Framing: "lf", Address: in.unixStream}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Hostname = "sender.test"
			cfg.Facility = "local3"
			cfg.MaxMessageBytes = 1024
			s, err := New("t-"+tc.name, cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if err := s.Connect(ctx); err != nil {
				t.Fatal(err)
			}
			defer s.Close(ctx)
			var batch []sinks.Message
			for i := 0; i < 20; i++ {
				batch = append(batch, sinks.Message{Seq: uint64(i), Value: []byte(fmt.Sprintf(`{"case":%q,"n":%d}`, tc.name, i)),
					Meta: sinks.Meta{Node: "n1", Types: []string{"EXECVE"}, Keys: []string{"exec"}, Severity: i % 5, Kind: "event"}})
			}
			batch = append(batch, sinks.Message{Seq: 20, Value: evilValue(tc.name), Meta: evilMeta})
			big := `{"case":"` + tc.name + `","big":"` + strings.Repeat("é", 3000) + `"}`
			batch = append(batch, sinks.Message{Seq: 21, Value: []byte(big), Meta: sinks.Meta{Node: "n1", Kind: "event"}})
			if err := s.Write(ctx, batch); err != nil {
				t.Fatal(err)
			}
			marker := `"case":"` + tc.name + `"`
			lines := waitLines(t, rs.raw, func(ls []string) bool { return count(ls, marker) >= 22 })
			mine := filter(lines, marker)
			if len(mine) != 22 {
				t.Fatalf("want 22 records with %s, got %d:\n%s", marker, len(mine), strings.Join(mine, "\n"))
			}
			for i := 0; i < 20; i++ {
				if n := count(mine, fmt.Sprintf(`"n":%d}`, i)); n != 1 {
					t.Errorf("message %d arrived %d times", i, n)
				}
			}
			stream := cfg.Transport != "udp" && cfg.Transport != "unix"
			if stream {
				for i := 0; i < 20; i++ {
					if !strings.Contains(mine[i], fmt.Sprintf(`"n":%d}`, i)) {
						t.Errorf("record %d out of order: %s", i, mine[i])
					}
				}
			}
			// The hostile message is one record, whole, and forged nothing.
			if n := count(mine, "FORGED"); n != 1 {
				t.Errorf("FORGED appears in %d records of this case, want 1", n)
			}
			for _, l := range filter(lines, "FORGED") {
				if !strings.Contains(l, `"case":"`) {
					t.Errorf("forged record: %q", l)
				}
			}
			evil := filter(mine, "FORGED")
			if len(evil) == 1 {
				e := evil[0]
				if !strings.Contains(e, `"evil":"a`) || !strings.Contains(e, "\\u0000") {
					t.Errorf("hostile record mangled: %q", e)
				}
				if cfg.Format == "rfc3164" || s.cfg.Framing != FramingOctetCounting {
					for _, want := range []string{`\u000A<13>1 - forged`, `\u000D\u0000\u001D]`} {
						if !strings.Contains(e, want) {
							t.Errorf("hostile record lacks escape %q: %q", want, e)
						}
					}
				} else if !strings.Contains(e, "#012<13>1 - forged") || !strings.Contains(e, "#015\\u0000#035]") {
					// Octet counting sends CR, LF and GS raw; rsyslog escapes them on receipt.
					t.Errorf("octet-counted hostile record not passed raw: %q", e)
				}
			}
			bigRec := filter(mine, `"big":`)
			if len(bigRec) != 1 {
				t.Fatalf("big message: %d records", len(bigRec))
			}
			if !utf8.ValidString(bigRec[0]) {
				t.Errorf("truncated record is not valid UTF-8")
			}
			if cfg.Format == "rfc3164" {
				if !strings.HasSuffix(bigRec[0], "é [truncated]") {
					t.Errorf("3164 truncation not marked: ...%s", tail(bigRec[0]))
				}
			} else if !strings.Contains(bigRec[0], `truncated="true" orig_bytes="`+fmt.Sprint(len(big))+`"`) {
				t.Errorf("5424 truncation not marked: %s", bigRec[0][:120])
			}
			if len(bigRec[0]) > 1024 || len(bigRec[0]) < 900 {
				t.Errorf("truncated record is %d bytes, want ≤ 1024 and near it", len(bigRec[0]))
			}

			// What rsyslog parsed out of the records.
			parsed := filter(waitLines(t, rs.parsed, func(ls []string) bool { return count(ls, marker) >= 22 }), marker)
			var sev []string
			for _, p := range parsed {
				sev = append(sev, strings.SplitN(p, "|", 3)[1])
			}
			// Severity is mapped from Meta.Severity 0..4: info notice warning err crit.
			want := []string{"6", "5", "4", "3", "2"}
			for i := 0; i < 20; i++ {
				if sev[i] != want[i%5] && stream {
					t.Errorf("record %d: severity %s, want %s", i, sev[i], want[i%5])
				}
				if !strings.HasPrefix(parsed[i], "19|") {
					t.Errorf("record %d: facility not local3 (19): %s", i, parsed[i])
				}
			}
			if cfg.Format == "rfc5424" {
				wantP := `19|3|sender.test|audisp-enrich|` + fmt.Sprint(pidOf()) + `|event|[audisp@32473 node="host\"\]\\x" severity="3" type="SYSCALL,PATH" key="k\]\"\\,k2\u000AX"]|`
				if p := filter(parsed, "FORGED"); len(p) != 1 || !strings.HasPrefix(p[0], wantP) {
					t.Errorf("parsed hostile record:\n got %q\nwant prefix %q", p, wantP)
				}
				n0 := filter(parsed, `"n":0}`)
				wantN := `19|6|sender.test|audisp-enrich|` + fmt.Sprint(pidOf()) + `|event|[audisp@32473 node="n1" severity="0" type="EXECVE" key="exec"]|{"case":"` + tc.name + `","n":0}`
				if len(n0) != 1 || n0[0] != wantN {
					t.Errorf("parsed record:\n got %q\nwant %q", n0, wantN)
				}
			} else if p := filter(parsed, `"n":0}`); len(p) != 1 || !strings.Contains(p[0], "|sender.test|audisp-enrich|") {
				t.Errorf("parsed 3164 record: %q", p)
			}
		})
	}
}

// TestReconnect: the collector goes away (the sink notices and asks for a
// reconnect), comes back on the same port, and delivery resumes.
func TestReconnect(t *testing.T) {
	dir := t.TempDir()
	in := rsyslogInputs{tcp: testsupport.FreePort(t, "tcp")}
	rs := startRsyslogIn(t, dir, in)
	s, err := New("t-reconnect", Config{Transport: "tcp", Address: fmt.Sprint("127.0.0.1:", in.tcp), WriteTimeout: time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	base := s.link.Connects.Value() // the counter is the sink name's, shared with earlier runs (-count)
	ctx := context.Background()
	if err := s.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	msg := func(n int) []sinks.Message {
		return []sinks.Message{{Value: []byte(fmt.Sprintf(`{"r":%d}`, n))}}
	}
	if err := s.Write(ctx, msg(1)); err != nil {
		t.Fatal(err)
	}
	waitLines(t, rs.raw, func(ls []string) bool { return count(ls, `{"r":1}`) == 1 })
	rs.stopFn()
	// The sink notices once its connection watcher reads the collector's
	// FIN; until then a write may still go into the socket (and is lost
	// with the collector, as on a real network).
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		err = s.Write(ctx, msg(2))
		if errors.Is(err, sinks.ErrNotConnected) {
			break
		}
		if err != nil || time.Now().After(deadline) {
			t.Fatalf("write to a stopped collector: got %v, want ErrNotConnected within 5 s", err)
		}
	}
	if err := s.Connect(ctx); err == nil {
		t.Fatal("connect to a stopped collector succeeded")
	}
	rs2 := startRsyslogIn(t, t.TempDir(), in)
	if err := s.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, msg(2)); err != nil {
		t.Fatal(err)
	}
	waitLines(t, rs2.raw, func(ls []string) bool { return count(ls, `{"r":2}`) == 1 })
	if got := s.link.Connects.Value() - base; got != 2 {
		t.Errorf("connects = %d, want 2", got)
	}
}

func TestWriteNotConnected(t *testing.T) {
	s, err := New("t-nc", Config{Transport: "udp", Address: "127.0.0.1:9"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write(context.Background(), []sinks.Message{{Value: []byte("x")}}); !errors.Is(err, sinks.ErrNotConnected) {
		t.Fatalf("got %v, want ErrNotConnected", err)
	}
}

func TestTLSBadCA(t *testing.T) {
	certs := makeCerts(t)
	other := makeCerts(t)
	in := rsyslogInputs{tls: testsupport.FreePort(t, "tcp"), certs: certs}
	startRsyslog(t, in)
	s, err := New("t-badca", Config{Transport: "tls", Address: fmt.Sprint("127.0.0.1:", in.tls), TLSFiles: sinks.TLSFiles{TLSCA: other.ca, TLSServerName: "localhost"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Connect(context.Background())
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("connect with the wrong CA: got %v, want a certificate error", err)
	}
}

func pidOf() int { return os.Getpid() }

func count(lines []string, sub string) int { return len(filter(lines, sub)) }

func filter(lines []string, sub string) []string {
	var out []string
	for _, l := range lines {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return out
}

func tail(s string) string {
	if len(s) > 40 {
		return s[len(s)-40:]
	}
	return s
}

// BenchmarkTCP measures records/s written to a real rsyslogd over tcp
// with octet counting, 100 messages of ~1.8 KB per Write, and checks that
// they all arrived.
func BenchmarkTCP(b *testing.B) {
	in := rsyslogInputs{tcp: testsupport.FreePort(b, "tcp")}
	rs := startRsyslog(b, in)
	s, err := New("bench", Config{Transport: "tcp", Address: fmt.Sprint("127.0.0.1:", in.tcp)}, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Connect(ctx); err != nil {
		b.Fatal(err)
	}
	defer s.Close(ctx)
	value := []byte(`{"x":"` + strings.Repeat("y", 1800) + `"}`)
	batch := make([]sinks.Message, 100)
	for i := range batch {
		batch[i] = sinks.Message{Value: value, Meta: sinks.Meta{Node: "n", Kind: "event"}}
	}
	b.SetBytes(int64(len(value) * len(batch)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := s.Write(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	want := b.N * len(batch)
	waitLines(b, rs.raw, func(ls []string) bool { return len(ls) >= want })
	b.ReportMetric(float64(want)/b.Elapsed().Seconds(), "records/s")
}
