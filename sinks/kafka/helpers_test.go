package kafka

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
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit/audittest"
	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
	"github.com/audisp-enrich/audisp-enrich/sinks"
)

// startCluster starts a one-broker kfake cluster on loopback and returns it
// with its address; it is closed when the test ends.
func startCluster(t testing.TB, opts ...kfake.Opt) (*kfake.Cluster, string) {
	t.Helper()
	opts = append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c, c.ListenAddrs()[0]
}

// testConfig returns a valid config for broker addr and topic.
func testConfig(addr, topic string) Config {
	c := DefaultConfig()
	c.Brokers = []string{addr}
	c.Topic = topic
	c.WriteTimeout = 10 * time.Second
	c.DialTimeout = 2 * time.Second
	c.RetryMax = 2
	c.RetryBackoff = 50 * time.Millisecond
	return c
}

// newSink builds and connects a sink, closing it when the test ends.
func newSink(t testing.TB, cfg Config) (*Sink, *testsupport.SyncBuffer) {
	t.Helper()
	logs := &testsupport.SyncBuffer{}
	s, err := New(t.Name(), cfg, nil, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Connect(ctx); err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s, logs
}

// event returns a message holding a JSON document shaped like the encoder's
// output (docs: output model), padded with pad bytes in one field.
func event(seq int, node, kind string, pad int, types ...string) sinks.Message {
	if len(types) == 0 {
		types = []string{"SYSCALL", "EXECVE", "PATH"}
	}
	id := fmt.Sprintf("%s:1764081400.%03d:%d", node, seq%1000, seq)
	recs := make([]map[string]any, 0, len(types))
	for i, ty := range types {
		f := map[string]any{"syscall": "59", "exe": "/usr/bin/bash", "key": "T1059.004_shell"}
		enc := "bqq"
		if i == 0 && pad > 0 {
			f["cmdline"] = strings.Repeat("x", pad)
			enc += "q"
		}
		recs = append(recs, map[string]any{"type": ty, "fields": f, "enc": enc})
	}
	doc := map[string]any{
		"schema_version": 1,
		"kind":           kind,
		"@timestamp":     "2026-11-25T14:36:40.123Z",
		"event":          map[string]any{"id": id, "serial": seq, "outcome": "success", "severity": 3},
		"records":        recs,
		"tags":           []string{"T1059.004_shell"},
	}
	switch kind {
	case "alert":
		doc["alert"] = map[string]any{"sink": "kafka", "reason": "test", "count": 1}
	case "verdict":
		doc["virustotal"] = map[string]any{"status": "hit", "malicious": 3}
		doc["related"] = map[string]any{"events": []string{id}}
	}
	if node != "" {
		doc["host"] = map[string]any{"name": node}
	}
	// The encoder writes "event" near the top; json.Marshal sorts keys,
	// which keeps it in the first kilobyte here as well.
	v, err := json.Marshal(doc)
	if err != nil {
		panic(err)
	}
	return sinks.Message{
		Seq:   uint64(seq),
		Value: v,
		Meta: sinks.Meta{Node: node, Types: types, Keys: []string{"T1059.004_shell"},
			Techniques: []string{"T1059.004"}, Severity: 3, Kind: kind},
	}
}

func eventIDOf(seq int, node string) string {
	return fmt.Sprintf("%s:1764081400.%03d:%d", node, seq%1000, seq)
}

// consumed is one message as kcat (librdkafka) read it.
type consumed struct {
	Topic     string   `json:"topic"`
	Partition int      `json:"partition"`
	Offset    int64    `json:"offset"`
	Key       *string  `json:"key"`
	Payload   *string  `json:"payload"`
	Headers   []string `json:"headers"`
}

func (c consumed) header(k string) (string, bool) {
	for i := 0; i+1 < len(c.Headers); i += 2 {
		if c.Headers[i] == k {
			return c.Headers[i+1], true
		}
	}
	return "", false
}

// kcat reads every message of topic from the beginning with kcat, the
// independent consumer, and returns them; extra are more kcat arguments
// (security settings).
func kcat(t testing.TB, addr, topic string, extra ...string) []consumed {
	t.Helper()
	testsupport.SkipShort(t, "reads back with kcat, the independent Kafka consumer")
	path, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatalf("kcat is required as the independent Kafka consumer (Debian package kcat): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := append([]string{"-b", addr, "-C", "-t", topic, "-o", "beginning", "-e", "-J", "-q",
		"-X", "topic.metadata.refresh.interval.ms=100"}, extra...)
	cmd := exec.CommandContext(ctx, path, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kcat %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	var msgs []consumed
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var m consumed
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("kcat output line %q: %v", sc.Text(), err)
		}
		msgs = append(msgs, m)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading kcat output: %v", err)
	}
	return msgs
}

// validateEvent checks that payload is one event document, valid against
// docs/schema/event.schema.json (plugin/audit/audittest), and returns it
// decoded.
func validateEvent(t testing.TB, payload string) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal([]byte(payload), &doc); err != nil {
		t.Fatalf("payload is not a JSON object: %v: %.200q", err, payload)
	}
	sch, err := audittest.Schema()
	if err != nil {
		t.Fatalf("event schema: %v", err)
	}
	if err := audittest.ValidateDocument(sch, []byte(payload)); err != nil {
		t.Fatalf("payload is not a valid event document: %v\n%.300s", err, payload)
	}
	for _, f := range []string{"schema_version", "kind", "@timestamp", "event", "records"} {
		if _, ok := doc[f]; !ok {
			t.Fatalf("payload lacks %q: %.200s", f, payload)
		}
	}
	if ev, ok := doc["event"].(map[string]any); !ok || ev["id"] == nil {
		t.Fatalf("payload lacks event.id: %.200s", payload)
	}
	return doc
}

// deliver plays the runner: it writes batch until every message was
// delivered, reconnecting with backoff on sinks.ErrNotConnected and retrying
// what was not delivered. It returns the number of Write calls.
func deliver(ctx context.Context, t testing.TB, s *Sink, batch []sinks.Message) int {
	t.Helper()
	pending := batch
	backoff := 50 * time.Millisecond
	writes := 0
	for len(pending) > 0 {
		if ctx.Err() != nil {
			t.Fatalf("gave up with %d messages undelivered: %v", len(pending), ctx.Err())
		}
		writes++
		err := s.Write(ctx, pending)
		var pe *sinks.PartialError
		switch {
		case err == nil:
			return writes
		case errors.Is(err, sinks.ErrNotConnected):
			for {
				cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				cerr := s.Connect(cctx)
				cancel()
				if cerr == nil {
					backoff = 50 * time.Millisecond
					break
				}
				if ctx.Err() != nil {
					t.Fatalf("reconnect: %v (last: %v)", ctx.Err(), cerr)
				}
				time.Sleep(backoff)
				backoff = min(2*backoff, time.Second)
			}
		case errors.As(err, &pe):
			done := make(map[int]bool, len(pe.Delivered))
			for _, i := range pe.Delivered {
				done[i] = true
			}
			var rest []sinks.Message
			for i, m := range pending {
				if !done[i] {
					rest = append(rest, m)
				}
			}
			pending = rest
		default:
			// Nothing delivered; retry the whole batch.
		}
	}
	return writes
}

// pki is a throw-away CA with a server and a client certificate, written
// as PEM files into a temporary directory.
type pki struct {
	dir                           string
	caFile, serverCert, serverKey string
	clientCert, clientKey         string
	serverTLS                     *tls.Config
	caPool                        *x509.CertPool
	otherCAFile                   string
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	p := &pki{dir: t.TempDir()}
	caKey, caCert, caDER := selfSigned(t, "audisp-enrich test CA")
	_, _, otherDER := selfSigned(t, "some other CA")
	p.caFile = writePEM(t, p.dir, "ca.pem", "CERTIFICATE", caDER)
	p.otherCAFile = writePEM(t, p.dir, "other-ca.pem", "CERTIFICATE", otherDER)
	p.caPool = x509.NewCertPool()
	p.caPool.AddCert(caCert)

	srvDER, srvKey := leaf(t, caCert, caKey, "kafka.test", x509.ExtKeyUsageServerAuth)
	p.serverCert = writePEM(t, p.dir, "server.pem", "CERTIFICATE", srvDER)
	p.serverKey = writePEM(t, p.dir, "server-key.pem", "PRIVATE KEY", srvKey)
	cliDER, cliKey := leaf(t, caCert, caKey, "audisp-enrich", x509.ExtKeyUsageClientAuth)
	p.clientCert = writePEM(t, p.dir, "client.pem", "CERTIFICATE", cliDER)
	p.clientKey = writePEM(t, p.dir, "client-key.pem", "PRIVATE KEY", cliKey)

	srv, err := tls.LoadX509KeyPair(p.serverCert, p.serverKey)
	if err != nil {
		t.Fatal(err)
	}
	p.serverTLS = &tls.Config{
		Certificates: []tls.Certificate{srv},
		ClientCAs:    p.caPool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}
	return p
}

func selfSigned(t testing.TB, cn string) (*ecdsa.PrivateKey, *x509.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, cert, der
}

func leaf(t testing.TB, ca *x509.Certificate, caKey *ecdsa.PrivateKey, cn string, usage x509.ExtKeyUsage) (certDER, keyDER []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		DNSNames:     []string{cn},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	certDER, err = x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err = x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return certDER, keyDER
}

func writePEM(t testing.TB, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// jsonUnmarshalStrict decodes s into v, rejecting unknown fields.
func jsonUnmarshalStrict(s string, v any) error {
	d := json.NewDecoder(strings.NewReader(s))
	d.DisallowUnknownFields()
	return d.Decode(v)
}

// kgoConsume reads want messages of topic from the beginning with franz-go's
// client, an independent implementation used where kcat cannot connect:
// librdkafka 2.0.2 (Debian 12's kcat) needs SaslHandshake v0, which kfake
// does not offer, so SASL cases are consumed here.
func kgoConsume(t testing.TB, addr, topic string, want int, opts ...kgo.Opt) []consumed {
	t.Helper()
	opts = append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatalf("franz-go consumer: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var out []consumed
	for len(out) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("franz-go consumer read %d of %d messages: %v", len(out), want, fs.Errors())
		}
		fs.EachRecord(func(r *kgo.Record) {
			c := consumed{Topic: r.Topic, Partition: int(r.Partition), Offset: r.Offset}
			if r.Key != nil {
				k := string(r.Key)
				c.Key = &k
			}
			v := string(r.Value)
			c.Payload = &v
			for _, h := range r.Headers {
				c.Headers = append(c.Headers, h.Key, string(h.Value))
			}
			out = append(out, c)
		})
	}
	return out
}
