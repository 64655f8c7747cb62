package gelf

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"math/big"
	mathrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"gopkg.in/Graylog2/go-gelf.v2/gelf"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
	"github.com/audisp-enrich/audisp-enrich/sinks"
	"github.com/audisp-enrich/audisp-enrich/sinks/buffer"
	"github.com/audisp-enrich/audisp-enrich/sinks/ecs"
	"github.com/audisp-enrich/audisp-enrich/sinks/sinktest"
	"github.com/audisp-enrich/audisp-enrich/sinks/syslog"
)

// The receivers below decode with Graylog's own GELF library
// (gopkg.in/Graylog2/go-gelf.v2): its UDP Reader reassembles chunks and
// decompresses gzip and zlib; for TCP its Message.UnmarshalJSON decodes
// each NUL-terminated frame.

type received struct {
	mu   sync.Mutex
	msgs []*gelf.Message
	errs []error
}

func (r *received) add(m *gelf.Message, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.errs = append(r.errs, err)
		return
	}
	r.msgs = append(r.msgs, m)
}

func (r *received) snapshot() ([]*gelf.Message, []error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs), slices.Clone(r.errs)
}

// waitN waits until n messages arrived (or fails after 10s).
func (r *received) waitN(t *testing.T, n int) []*gelf.Message {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		msgs, errs := r.snapshot()
		if len(errs) > 0 {
			t.Fatalf("receiver errors: %v", errs)
		}
		if len(msgs) >= n {
			return msgs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages arrived", len(msgs), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// udpReceiver starts a go-gelf UDP reader on a free port.
func udpReceiver(t *testing.T) (*received, string) {
	rd, err := gelf.NewReader("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &received{}
	// go-gelf's Reader has no Close: its goroutine and socket live until
	// the test binary exits (a few per run).
	go func() {
		for {
			r.add(rd.ReadMessage())
		}
	}()
	return r, rd.Addr()
}

// tcpReceiver is a GELF TCP (or TLS) input: NUL-terminated frames, each
// decoded by go-gelf's Message.UnmarshalJSON. stop closes it; start opens
// it again on the same address.
type tcpReceiver struct {
	*received
	addr  string
	tls   *tls.Config
	mu    sync.Mutex
	ln    net.Listener
	conns []net.Conn
	wg    sync.WaitGroup
}

func newTCPReceiver(t *testing.T, tc *tls.Config) *tcpReceiver {
	r := &tcpReceiver{received: &received{}, addr: "127.0.0.1:0", tls: tc}
	r.start(t)
	t.Cleanup(r.stop)
	return r
}

func (r *tcpReceiver) start(t *testing.T) {
	var ln net.Listener
	var err error
	for range 50 { // the port of a stopped receiver may take a moment to free
		if ln, err = net.Listen("tcp", r.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	if r.tls != nil {
		ln = tls.NewListener(ln, r.tls)
	}
	r.mu.Lock()
	r.ln, r.addr = ln, ln.Addr().String()
	r.mu.Unlock()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.mu.Lock()
			r.conns = append(r.conns, c)
			r.mu.Unlock()
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				br := bufio.NewReader(c)
				for {
					frame, err := br.ReadBytes(0)
					if err != nil {
						return
					}
					var m gelf.Message
					if err := json.Unmarshal(frame[:len(frame)-1], &m); err != nil {
						r.add(nil, fmt.Errorf("frame %q: %w", frame, err))
						continue
					}
					r.add(&m, nil)
				}
			}()
		}
	}()
}

func (r *tcpReceiver) stop() {
	r.mu.Lock()
	if r.ln != nil {
		r.ln.Close()
		r.ln = nil
	}
	for _, c := range r.conns {
		c.Close()
	}
	r.conns = nil
	r.mu.Unlock()
	r.wg.Wait()
}

// docs returns real documents of both profiles with their routing
// metadata: the golden full documents of plugin/audit and the ecs
// documents of the bundled capture.
func docs(t testing.TB) []sinks.Message {
	root, err := testsupport.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	var out []sinks.Message
	golden, _ := filepath.Glob(filepath.Join(root, "plugin/audit/testdata/*.golden.jsonl"))
	for _, g := range golden {
		data, err := os.ReadFile(g)
		if err != nil {
			t.Fatal(err)
		}
		for line := range bytes.Lines(data) {
			out = append(out, sinks.Message{Value: bytes.TrimSpace(line), Meta: sinks.Meta{Severity: len(out) % 5}})
		}
	}
	data, err := os.ReadFile(filepath.Join(root, "plugin/testdata/capture.log"))
	if err != nil {
		t.Fatal(err)
	}
	var p audit.Parser
	r := audit.NewReassembler(audit.ReassemblerConfig{StreamTime: true}, func(ev *audit.Event) {
		out = append(out, sinks.Message{Value: ecs.Encode(nil, ev, ecs.Options{}), Meta: sinks.Meta{Node: "node-a", Severity: 3}})
	})
	for line := range bytes.Lines(data) {
		if rec, err := p.Parse(string(bytes.TrimSpace(line))); err == nil {
			r.Push(rec)
		}
	}
	r.Flush()
	return out
}

var fieldName = regexp.MustCompile(`^_[\w.\-]*$`)

// expected flattens doc by the documented rule, independently of the
// encoder: encoding/json decodes it, the rule is applied to the tree.
func expected(t testing.TB, doc []byte) (map[string]any, float64) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v map[string]any
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	out := map[string]any{}
	name := func(path []string) string {
		n := []byte("_" + strings.Join(path, "_"))
		for i, c := range n {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
				n[i] = '_'
			}
		}
		if string(n) == "_id" {
			return "__id"
		}
		return string(n)
	}
	scalarText := func(x any) (string, bool) {
		switch y := x.(type) {
		case string:
			return y, true
		case json.Number:
			return y.String(), true
		case bool:
			return fmt.Sprint(y), true
		}
		return "", false
	}
	var walk func(path []string, x any)
	walk = func(path []string, x any) {
		switch y := x.(type) {
		case map[string]any:
			for k, e := range y {
				walk(append(slices.Clone(path), k), e)
			}
		case []any:
			nested := slices.ContainsFunc(y, func(e any) bool {
				_, m := e.(map[string]any)
				_, a := e.([]any)
				return m || a
			})
			if nested {
				for i, e := range y {
					walk(append(slices.Clone(path), fmt.Sprint(i)), e)
				}
				return
			}
			var parts []string
			for _, e := range y {
				if s, ok := scalarText(e); ok {
					parts = append(parts, s)
				}
			}
			if len(parts) > 0 {
				out[name(path)] = strings.Join(parts, ",")
			}
		case nil:
		case bool:
			out[name(path)] = fmt.Sprint(y)
		default:
			out[name(path)] = y
		}
	}
	var ts float64
	if s, ok := v["@timestamp"].(string); ok {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		ts = float64(tm.UnixMilli()) / 1000
		delete(v, "@timestamp")
	}
	walk(nil, v)
	return out, ts
}

// checkMessage compares a received message with the document it came from.
func checkMessage(t *testing.T, m *gelf.Message, sent sinks.Message, host string) {
	t.Helper()
	want, ts := expected(t, sent.Value)
	if m.Version != "1.1" || m.Short == "" {
		t.Errorf("version %q, short_message %q", m.Version, m.Short)
	}
	wantHost := sent.Meta.Node
	if wantHost == "" {
		wantHost = host
	}
	if m.Host != wantHost {
		t.Errorf("host %q, want %q", m.Host, wantHost)
	}
	if int(m.Level) != syslog.MapSeverity(sent.Meta.Severity) {
		t.Errorf("level %d for severity %d", m.Level, sent.Meta.Severity)
	}
	if ts != 0 && math.Abs(m.TimeUnix-ts) > 0.0005 {
		t.Errorf("timestamp %f, want %f", m.TimeUnix, ts)
	}
	for k := range m.Extra {
		if !fieldName.MatchString(k) || k == "_id" {
			t.Errorf("field name %q breaks the GELF rules", k)
		}
	}
	if len(m.Extra) != len(want) {
		var got, exp []string
		for k := range m.Extra {
			got = append(got, k)
		}
		for k := range want {
			exp = append(exp, k)
		}
		slices.Sort(got)
		slices.Sort(exp)
		t.Fatalf("%d fields, want %d:\n got %v\nwant %v", len(m.Extra), len(want), got, exp)
	}
	for k, w := range want {
		g := m.Extra[k]
		switch wv := w.(type) {
		case json.Number:
			f, _ := wv.Float64()
			if gf, ok := g.(float64); !ok || gf != f {
				t.Errorf("%s = %v, want %v", k, g, wv)
			}
		default:
			if g != w {
				t.Errorf("%s = %q, want %q", k, g, w)
			}
		}
	}
}

func newSink(t testing.TB, cfg Config) *Sink {
	s, err := New(t.Name(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// send writes all messages in batches of 5, waiting for the receiver
// between batches so that the reader's socket buffer never overflows
// (small UDP chunks cost the kernel far more than their size).
func send(t *testing.T, s *Sink, r *received, ms []sinks.Message) []*gelf.Message {
	t.Helper()
	ctx := context.Background()
	if err := s.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	base := len(func() []*gelf.Message { m, _ := r.snapshot(); return m }())
	for i := 0; i < len(ms); i += 5 {
		batch := ms[i:min(i+5, len(ms))]
		if err := s.Write(ctx, batch); err != nil {
			t.Fatal(err)
		}
		r.waitN(t, base+i+len(batch))
	}
	msgs, _ := r.snapshot()
	return msgs[base:]
}

// TestUDPFields: every document of both profiles arrives through the UDP
// transport, with each compression and with and without chunking, and
// carries exactly the fields of the flattening rule.
func TestUDPFields(t *testing.T) {
	ms := docs(t)
	for _, c := range []struct {
		compression string
		chunk       int
	}{{"gzip", 0}, {"zlib", 0}, {"gzip", 200}, {"zlib", 200}, {"none", 300}, {"auto", 0}, {"auto", 300}} {
		t.Run(fmt.Sprint(c.compression, c.chunk), func(t *testing.T) {
			r, addr := udpReceiver(t)
			s := newSink(t, Config{Address: addr, Compression: c.compression, ChunkSize: c.chunk, Host: "local"})
			got := send(t, s, r, ms)
			for i := range ms {
				checkMessage(t, got[i], ms[i], "local")
			}
			if c.chunk > 0 && s.chunks.Value() == 0 {
				t.Errorf("no message was chunked at chunk_size %d", c.chunk)
			}
		})
	}
}

// TestAutoCompression: with compression "auto" a message that fits one
// datagram goes as plain JSON, one that fits two goes as two plain
// chunks, and a larger one gzip-compressed (in one datagram or in
// chunks), as read from the socket.
func TestAutoCompression(t *testing.T) {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	small := sinks.Message{Value: []byte(`{"event":{"action":"execve"}}`)}
	// 3 KB of audit-like words in a fixed pseudo-random order: more than
	// one datagram of the default chunk_size plain, about 650 bytes
	// compressed (one datagram), still several chunks at chunk_size 200.
	rnd := mathrand.New(mathrand.NewPCG(1, 2))
	words := []string{"type=EXECVE", "argc=3", "a0=/bin/sh", "a1=-c", "cwd=/tmp", "uid=0", "pid=4242", "exe=/usr/bin/x"}
	var text []byte
	for len(text) < 3000 {
		text = append(append(text, words[rnd.IntN(len(words))]...), ' ')
	}
	big := sinks.Message{Value: []byte(`{"event":{"original":"` + string(text) + `"}}`)}
	medium := sinks.Message{Value: []byte(`{"event":{"original":"` + string(text[:2000]) + `"}}`)}
	for _, c := range []struct {
		chunk int
		first []byte // leading bytes of the first datagram of big
	}{{0, []byte{0x1f, 0x8b}}, {200, []byte{0x1e, 0x0f}}} {
		if c.chunk == 0 {
			// medium (2.1 KB) needs two datagrams of the default 1420 bytes: plain.
			s := newSink(t, Config{Address: conn.LocalAddr().String()})
			ctx := context.Background()
			if err := s.Connect(ctx); err != nil {
				t.Fatal(err)
			}
			if err := s.Write(ctx, []sinks.Message{medium}); err != nil {
				t.Fatal(err)
			}
			s.Close(ctx)
			buf := make([]byte, 65536)
			for seq := byte(0); seq < 2; seq++ {
				_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				n, err := conn.Read(buf)
				if err != nil || n < 13 || buf[0] != 0x1e || buf[1] != 0x0f || buf[10] != seq || buf[11] != 2 {
					t.Fatalf("medium message, datagram %d: %x, %v; want chunk %d of 2", seq, buf[:min(n, 14)], err, seq)
				}
				if seq == 0 && buf[12] != '{' {
					t.Fatalf("medium message: first chunk's data starts %q, want plain JSON", buf[12:14])
				}
			}
		}
		s := newSink(t, Config{Address: conn.LocalAddr().String(), ChunkSize: c.chunk})
		ctx := context.Background()
		if err := s.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		if err := s.Write(ctx, []sinks.Message{small, big}); err != nil {
			t.Fatal(err)
		}
		s.Close(ctx)
		buf := make([]byte, 65536)
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := conn.Read(buf)
		if err != nil || buf[0] != '{' {
			t.Fatalf("chunk_size %d: small message: %q, %v; want plain JSON", c.chunk, buf[:min(n, 20)], err)
		}
		n, err = conn.Read(buf)
		if err != nil || !bytes.HasPrefix(buf[:n], c.first) {
			t.Fatalf("chunk_size %d: big message starts %x, %v; want %x", c.chunk, buf[:min(n, 4)], err, c.first)
		}
		if c.chunk > 0 && buf[12] != 0x1f { // the first chunk carries the gzip header
			t.Errorf("chunk_size %d: first chunk's data starts %x, want gzip", c.chunk, buf[12:14])
		}
		for c.chunk > 0 && buf[10] != buf[11]-1 { // read up to the last chunk
			if _, err := conn.Read(buf); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestUDPOverIPv6: the batched UDP writes (sendmmsg through
// golang.org/x/net/ipv4) work on an IPv6 socket too.
func TestUDPOverIPv6(t *testing.T) {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer conn.Close()
	s := newSink(t, Config{Address: conn.LocalAddr().String(), Host: "h"})
	ctx := context.Background()
	if err := s.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	if err := s.Write(ctx, []sinks.Message{{Value: []byte(`{"a":1}`)}, {Value: []byte(`{"b":2}`)}}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for _, want := range []string{`"_a":1}`, `"_b":2}`} {
		n, err := conn.Read(buf)
		if err != nil || !bytes.HasSuffix(buf[:n], []byte(want)) {
			t.Fatalf("got %q, %v; want a message ending %s", buf[:n], err, want)
		}
	}
}

// TestTCPFields: the same over TCP and TLS.
func TestTCPFields(t *testing.T) {
	ms := docs(t)
	r := newTCPReceiver(t, nil)
	got := send(t, newSink(t, Config{Address: r.addr, Transport: "tcp", Host: "local"}), r.received, ms)
	for i := range ms {
		checkMessage(t, got[i], ms[i], "local")
	}
	ca, srv := testCA(t)
	rt := newTCPReceiver(t, srv)
	got = send(t, newSink(t, Config{Address: rt.addr, Transport: "tls", TLSFiles: sinks.TLSFiles{TLSCA: ca}, Host: "local"}), rt.received, ms[:10])
	for i := range got {
		checkMessage(t, got[i], ms[i], "local")
	}
}

// TestShortMessage: the default template on an ecs document of an exec.
func TestShortMessage(t *testing.T) {
	tmpl, err := parseTemplate(DefaultTemplate)
	if err != nil {
		t.Fatal(err)
	}
	e := newEncoder(tmpl, "h")
	doc := `{"@timestamp":"2023-11-14T22:13:20.100Z","event":{"action":"execve"},"process":{"executable":"/tmp/x \"y\""},` +
		`"user":{"id":"0","name":"root"},"threat":{"technique":{"id":["T1059"],"subtechnique":{"id":["T1059.004","T1059.006"]}}},` +
		`"audisp_enrich":{"hunt":[{"rule":"exec_from_temp","severity":3},{"rule":"web_shell","severity":4}]}}`
	msg, n, err := e.encode([]byte(doc), "", 3, -1)
	if err != nil {
		t.Fatal(err)
	}
	var m gelf.Message
	if err := json.Unmarshal(msg, &m); err != nil {
		t.Fatal(err)
	}
	if want := `execve /tmp/x "y" user=root techniques=T1059.004,T1059.006 hunt=exec_from_temp,web_shell`; m.Short != want {
		t.Errorf("short_message %q, want %q", m.Short, want)
	}
	if n != 10 || m.Extra["_audisp_enrich_hunt_1_rule"] != "web_shell" || m.TimeUnix != 1700000000.1 {
		t.Errorf("fields %d, message %s", n, msg)
	}
	msg, _, _ = e.encode([]byte(`{"x":1}`), "", 6, -1)
	if err := json.Unmarshal(msg, &m); err != nil || m.Short != "audit event" {
		t.Errorf("empty template result: %q, %v", m.Short, err)
	}
	msg, _, _ = e.encode([]byte(`{"a.b":1,"a":{"b":2},"a_b":3,"id":4,"a~b":5}`), "", 6, -1)
	if want := `,"level":6,"_a_b":1,"_a_b_2":2,"_a_b_3":3,"__id":4,"_a_b_4":5}`; !bytes.HasSuffix(msg, []byte(want)) {
		t.Errorf("colliding names: %s, want suffix %s", msg, want)
	}
	msg, _, _ = e.encode([]byte(`{"a_b_2":0,"a.b":1,"a_b":2}`), "", 6, -1)
	if want := `,"level":6,"_a_b_2":0,"_a_b":1,"_a_b_3":2}`; !bytes.HasSuffix(msg, []byte(want)) {
		t.Errorf("suffix already taken: %s, want suffix %s", msg, want)
	}
	// Past the name set's first growth (48 names) colliding names are
	// still found, in every message after it too.
	var many bytes.Buffer
	many.WriteString(`{"a.b":0`)
	for i := range 300 {
		fmt.Fprintf(&many, `,"f%d":%d`, i, i)
	}
	many.WriteString(`,"a":{"b":1},"a_b":2}`)
	for range 2 {
		msg, _, _ = e.encode(many.Bytes(), "", 6, -1)
		if want := `,"_f299":299,"_a_b_2":1,"_a_b_3":2}`; !bytes.HasPrefix(msg[bytes.Index(msg, []byte(`,"_a_b"`)):], []byte(`,"_a_b":0,`)) || !bytes.HasSuffix(msg, []byte(want)) {
			t.Errorf("colliding names among 302: %s, want suffix %s", msg[max(0, len(msg)-80):], want)
		}
	}
	for _, bad := range []string{"{", "{}", "text only", "{a b}"} {
		if _, err := parseTemplate(bad); err == nil {
			t.Errorf("template %q accepted", bad)
		}
	}
}

// TestTruncated: a message too big for 128 chunks arrives truncated,
// marked and counted; its first fields are kept.
func TestTruncated(t *testing.T) {
	r, addr := udpReceiver(t)
	s := newSink(t, Config{Address: addr, ChunkSize: 200, Host: "local"})
	var doc bytes.Buffer
	doc.WriteString(`{"event":{"action":"execve"},"first":"kept"`)
	rnd := make([]byte, 600)
	for i := range 100 {
		_, _ = rand.Read(rnd)
		fmt.Fprintf(&doc, `,"f%d":"%x"`, i, rnd)
	}
	doc.WriteString("}")
	before := s.truncated.Value()
	got := send(t, s, r, []sinks.Message{{Value: doc.Bytes()}})
	m := got[0]
	if m.Extra["_truncated"] != 1.0 || m.Extra["_original_bytes"].(float64) < float64(doc.Len()) || m.Extra["_first"] != "kept" {
		t.Errorf("truncated message: %v", m.Extra["_truncated"])
	}
	if len(m.Extra) >= 100 || s.truncated.Value()-before != 1 {
		t.Errorf("%d fields kept, truncated counter +%d", len(m.Extra), s.truncated.Value()-before)
	}
}

// TestBadDocument: a document that is not a JSON object is counted and
// skipped; the batch goes on.
func TestBadDocument(t *testing.T) {
	r := newTCPReceiver(t, nil)
	s := newSink(t, Config{Address: r.addr, Transport: "tcp"})
	ms := []sinks.Message{{Value: []byte(`{"a":1}`)}, {Value: []byte(`not json`)}, {Value: []byte(`{"a":2}`)}}
	ctx := context.Background()
	if err := s.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	bad := s.bad.Value()
	if err := s.Write(ctx, ms); err != nil {
		t.Fatal(err)
	}
	got := r.waitN(t, 2)
	if got[1].Extra["_a"] != 2.0 || s.bad.Value()-bad != 1 {
		t.Errorf("second message %v, bad counter +%d", got[1].Extra, s.bad.Value()-bad)
	}
}

// TestSuite runs the sinks conformance suite over TCP and UDP.
func TestSuite(t *testing.T) {
	for _, transport := range []string{"tcp", "udp"} {
		t.Run(transport, func(t *testing.T) {
			var rcv *received
			var addr string
			if transport == "tcp" {
				tr := newTCPReceiver(t, nil)
				rcv, addr = tr.received, tr.addr
			} else {
				rcv, addr = udpReceiver(t)
			}
			sinktest.Run(t, func(t *testing.T) sinks.Sink {
				return newSink(t, Config{Address: addr, Transport: transport, WriteTimeout: 2 * time.Second})
			}, func(t *testing.T) [][]byte {
				msgs, _ := rcv.snapshot()
				var out [][]byte
				for _, m := range msgs {
					b, _ := json.Marshal(m.Extra)
					out = append(out, b)
				}
				return out
			})
		})
	}
}

// TestDownAndBack: the GELF input goes away and comes back; the runner
// and its buffer deliver every message exactly as sent.
func TestDownAndBack(t *testing.T) {
	r := newTCPReceiver(t, nil)
	s := newSink(t, Config{Address: r.addr, Transport: "tcp", WriteTimeout: time.Second})
	bc := buffer.DefaultConfig()
	bc.Dir = t.TempDir()
	rc := sinks.DefaultRunnerConfig()
	rc.BackoffMin, rc.BackoffMax = 20*time.Millisecond, 200*time.Millisecond
	run, err := sinks.NewRunner(s, rc, buffer.Opener(bc, buffer.Options{Name: "gelf-down"}), sinks.RunnerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	run.Start()
	defer run.Stop(context.Background())
	const n = 300
	pub := func(from, to int) {
		for i := from; i < to; i++ {
			if err := run.Append(sinks.Message{Value: fmt.Appendf(nil, `{"n":%d}`, i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	pub(0, 100)
	r.waitN(t, 100)
	r.stop()
	// GELF has no acknowledgement: a message written before the sink saw
	// the input's FIN is lost in the kernel (documented). Let it see it.
	time.Sleep(100 * time.Millisecond)
	pub(100, 200)
	time.Sleep(300 * time.Millisecond)
	r.start(t)
	pub(200, n)
	deadline := time.Now().Add(20 * time.Second)
	for {
		msgs, errs := r.snapshot()
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		seen := map[float64]bool{}
		for _, m := range msgs {
			seen[m.Extra["_n"].(float64)] = true
		}
		if len(seen) == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d distinct messages delivered after the input came back", len(seen), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestConfig(t *testing.T) {
	c := Config{Address: "h:12201"}
	if err := c.Validate(); err != nil || c.Compression != "auto" || c.ChunkSize != 1420 || c.ShortMessage != DefaultTemplate {
		t.Errorf("defaults: %+v, %v", c, err)
	}
	for name, bad := range map[string]Config{
		"no address":         {},
		"transport":          {Address: "h:1", Transport: "sctp"},
		"compression on tcp": {Address: "h:1", Transport: "tcp", Compression: "gzip"},
		"compression":        {Address: "h:1", Compression: "lz4"},
		"chunk too small":    {Address: "h:1", ChunkSize: 64},
		"template":           {Address: "h:1", ShortMessage: "{"},
		"tls on udp":         {Address: "h:1", TLSFiles: sinks.TLSFiles{TLSCA: "/ca.pem"}},
		"tls key on tcp":     {Address: "h:1", Transport: "tcp", TLSFiles: sinks.TLSFiles{TLSKey: "/k.pem"}},
		"cert without key":   {Address: "h:1", Transport: "tls", TLSFiles: sinks.TLSFiles{TLSCert: "/c.pem"}},
		"key without cert":   {Address: "h:1", Transport: "tls", TLSFiles: sinks.TLSFiles{TLSKey: "/k.pem"}},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzEncode: for any input the encoder either refuses it or produces one
// GELF message that is valid JSON, decodes with go-gelf, and has only
// valid additional field names.
func FuzzEncode(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{"@timestamp":"2023-11-14T22:13:20.100Z","event":{"action":"x"},"id":"y","l":[1,"a",true,null],"o":[{"k":[{"z":1}]}],"u":"\u00e9\ud83d\ude00"}`,
		`{"a\"b":{"c d":-1.5e3}}`, `{"a_b_2":0,"a.b":1,"a_b":2}`, `[]`, `{"a":}`, `{"x":"` + strings.Repeat(`\"`, 700) + `"}`} {
		f.Add([]byte(s))
	}
	tmpl, err := parseTemplate(DefaultTemplate + " {x} {a}")
	if err != nil {
		f.Fatal(err)
	}
	e := newEncoder(tmpl, "h")
	f.Fuzz(func(t *testing.T, doc []byte) {
		msg, _, err := e.encode(doc, "", 6, -1)
		if err != nil {
			if json.Valid(doc) && utf8.Valid(doc) && bytes.HasPrefix(bytes.TrimSpace(doc), []byte("{")) && !errors.Is(err, errDoc) && !strings.Contains(err.Error(), "deeply") {
				t.Fatalf("valid object refused: %v", err)
			}
			return
		}
		if !json.Valid(msg) {
			t.Fatalf("invalid JSON: %s", msg)
		}
		var m gelf.Message
		if err := json.Unmarshal(msg, &m); err != nil {
			t.Fatalf("go-gelf: %v: %s", err, msg)
		}
		for k := range m.Extra {
			if !fieldName.MatchString(k) || k == "_id" {
				t.Fatalf("field name %q", k)
			}
		}
		if k := duplicateKey(msg); k != "" {
			t.Fatalf("field %q written twice: %s", k, msg)
		}
		if m.Short == "" || len(m.Short) > maxShort*6 {
			t.Fatalf("short_message %q", m.Short)
		}
	})
}

// duplicateKey returns a member name that the JSON object msg holds
// twice, or "".
func duplicateKey(msg []byte) string {
	d := json.NewDecoder(bytes.NewReader(msg))
	seen := map[string]bool{}
	if _, err := d.Token(); err != nil { // {
		return ""
	}
	for d.More() {
		k, err := d.Token()
		if err != nil {
			return ""
		}
		if seen[k.(string)] {
			return k.(string)
		}
		seen[k.(string)] = true
		var v json.RawMessage
		if err := d.Decode(&v); err != nil {
			return ""
		}
	}
	return ""
}

// FuzzTemplate: any template is refused or renders a short_message that
// keeps the message valid JSON.
func FuzzTemplate(f *testing.F) {
	for _, s := range []string{DefaultTemplate, "{a}", "x={a|b} {c=}", "{", "}{", "{=a}", "\\{a}\""} {
		f.Add(s)
	}
	doc := []byte(`{"a":"x\"y","b":[1,2],"c":{"d":"\u00e9"}}`)
	f.Fuzz(func(t *testing.T, tmpl string) {
		if !utf8.ValidString(tmpl) {
			return // TOML strings are UTF-8
		}
		tp, err := parseTemplate(tmpl)
		if err != nil {
			return
		}
		msg, _, err := newEncoder(tp, "h").encode(doc, "", 6, -1)
		if err != nil {
			t.Fatal(err)
		}
		var m gelf.Message
		if err := json.Unmarshal(msg, &m); err != nil || m.Short == "" {
			t.Fatalf("%v: %s", err, msg)
		}
	})
}

// testCA writes a CA certificate and returns its path and a server TLS
// configuration for 127.0.0.1 signed by it.
func testCA(t *testing.T) (string, *tls.Config) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gelf test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
}
