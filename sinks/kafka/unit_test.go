package kafka

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/BurntSushi/toml"

	"github.com/audisp-enrich/audisp-enrich/sinks"
)

func TestConfigValidate(t *testing.T) {
	good := DefaultConfig()
	good.Brokers = []string{"127.0.0.1:9092"}
	if err := good.Validate(); err != nil {
		t.Fatalf("default config with a broker: %v", err)
	}
	def := DefaultConfig()
	if err := def.Validate(); err == nil || !strings.Contains(err.Error(), "brokers") {
		t.Fatalf("default config without brokers: %v", err)
	}
	cases := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"broker without port", func(c *Config) { c.Brokers = []string{"kafka"} }, `brokers: "kafka"`},
		{"empty topic", func(c *Config) { c.Topic = "" }, "topic: must not be empty"},
		{"illegal topic", func(c *Config) { c.Topic = "audit events" }, "not allowed in a topic"},
		{"unknown placeholder", func(c *Config) { c.Topic = "a.{host}" }, "unknown placeholder {host}"},
		{"unclosed placeholder", func(c *Config) { c.Topic = "a.{node" }, "unclosed"},
		{"bad key", func(c *Config) { c.Key = "uid" }, "key:"},
		{"bad compression", func(c *Config) { c.Compression = "brotli" }, "compression:"},
		{"bad acks", func(c *Config) { c.RequiredAcks = "2" }, "required_acks:"},
		{"idempotent needs acks all", func(c *Config) { c.RequiredAcks = "leader" }, `idempotent: needs required_acks = "all"`},
		{"idempotent needs version", func(c *Config) { c.Version = "0.10.2.0"; c.Headers = false }, "idempotent: needs version >= 0.11.0"},
		{"headers need version", func(c *Config) { c.Version = "0.10.2.0"; c.Idempotent = false }, "headers: need version"},
		{"zstd needs version", func(c *Config) { c.Version = "2.0.0"; c.Compression = "zstd" }, "zstd needs version >= 2.1.0"},
		{"bad version", func(c *Config) { c.Version = "two" }, "version:"},
		{"small max bytes", func(c *Config) { c.MaxMessageBytes = 100 }, "max_message_bytes"},
		{"close timeout too long", func(c *Config) { c.CloseTimeout = 2 * time.Second }, "close_timeout"},
		{"tls files without tls", func(c *Config) { c.TLSCA = "/etc/ca.pem" }, "tls_* options need tls = true"},
		{"tls key without tls", func(c *Config) { c.TLSKey = "/k.pem" }, "tls_* options need tls = true"},
		{"insecure without tls", func(c *Config) { c.TLSInsecureSkipVerify = true }, "tls_insecure_skip_verify: needs tls = true"},
		{"cert without key", func(c *Config) { c.TLS = true; c.TLSCert = "/c.pem" }, "tls_cert and tls_key must be set together"},
		{"sasl without password", func(c *Config) { c.SASLMechanism = "PLAIN"; c.SASLUser = "u" }, "sasl_password"},
		{"bad sasl mechanism", func(c *Config) { c.SASLMechanism = "GSSAPI"; c.SASLUser = "u"; c.SASLPassword = "p" }, "sasl_mechanism:"},
		{"credentials without mechanism", func(c *Config) { c.SASLUser = "u" }, "no mechanism"},
		{"idempotent needs retries", func(c *Config) { c.RetryMax = 0 }, "retry_max >= 1"},
	}
	for _, tc := range cases {
		c := good
		tc.mod(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Validate() = %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}

// TestConfigTOML decodes every option from TOML.
func TestConfigTOML(t *testing.T) {
	const doc = `
brokers = ["127.0.0.1:9092", "127.0.0.1:9093"]
topic = "audit.{node}.{kind}"
key = "event_id"
headers = false
compression = "zstd"
idempotent = false
required_acks = "leader"
max_message_bytes = 500000
client_id = "host-7"
version = "3.6.0"
dial_timeout = "3s"
write_timeout = "20s"
retry_max = 9
retry_backoff = "50ms"
close_timeout = "500ms"
tls = true
tls_ca = "/etc/ca.pem"
tls_cert = "/etc/c.pem"
tls_key = "/etc/k.pem"
tls_server_name = "kafka.example"
tls_insecure_skip_verify = false
sasl_mechanism = "SCRAM-SHA-512"
sasl_user = "audit"
sasl_password = "hunter2hunter2"
`
	c := DefaultConfig()
	md, err := toml.Decode(doc, &c)
	if err != nil {
		t.Fatal(err)
	}
	if u := md.Undecoded(); len(u) != 0 {
		t.Fatalf("options without a field: %v", u)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Key != KeyEventID || c.Compression != "zstd" || c.WriteTimeout != 20*time.Second || c.SASLPassword != "hunter2hunter2" ||
		c.TLSServerName != "kafka.example" || c.RetryBackoff != 50*time.Millisecond || len(c.Brokers) != 2 {
		t.Fatalf("decoded %+v", c)
	}
	var out bytes.Buffer
	if err := toml.NewEncoder(&out).Encode(c); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), out.String()} {
		if strings.Contains(s, "hunter2") {
			t.Fatalf("password shown: %s", s)
		}
	}
}

func TestTopicTemplate(t *testing.T) {
	meta := sinks.Meta{Node: "web-1.example.com", Types: []string{"SYSCALL", "PATH"}, Kind: "alert"}
	cases := []struct {
		tmpl string
		meta sinks.Meta
		want string
	}{
		{"audit", meta, "audit"},
		{"audit.{node}.{kind}", meta, "audit.web-1.example.com.alert"},
		{"{type}", meta, "SYSCALL"},
		{"a-{node}", sinks.Meta{Node: "db 2/ü"}, "a-db_2___"},
		{"{node}.{type}.{kind}", sinks.Meta{}, "unknown.unknown.unknown"},
		{"{node}", sinks.Meta{Node: "."}, "."},
		{"{node}", sinks.Meta{Node: strings.Repeat("n", 300)}, strings.Repeat("n", 249)},
	}
	for _, tc := range cases {
		tt, err := parseTopic(tc.tmpl)
		if err != nil {
			t.Fatalf("%s: %v", tc.tmpl, err)
		}
		got := tt.topic(&tc.meta)
		if tc.want == "." {
			tc.want = "_"
		}
		if got != tc.want {
			t.Errorf("%s with %+v = %q, want %q", tc.tmpl, tc.meta, got, tc.want)
		}
	}
}

func TestEventID(t *testing.T) {
	cases := map[string]string{
		`{"schema_version":1,"kind":"audit","event":{"id":"web1:1.2:3","serial":3}}`: "web1:1.2:3",
		`{"event":{"id":"a\"b\\c:1.0:1"}}`:                                           `a"b\c:1.0:1`,
		`{"event":{"serial":3,"id":"x"}}`:                                            "",
		`{"records":[{"fields":{"x":"\"event\":{\"id\":\"fake\""}}]}`:                "",
		`{"event":{"id":"unterminated`:                                               "",
		"\x92\xa1a":                                                                  "",
		`{"event":{"id":"` + strings.Repeat("z", 300) + `"}}`:                        "",
	}
	for in, want := range cases {
		if got := eventID([]byte(in)); got != want {
			t.Errorf("eventID(%.60q) = %q, want %q", in, got, want)
		}
	}
}

func TestTruncatedValue(t *testing.T) {
	orig := event(42, "web1", "alert", 100000)
	b := builder{topic: &topicTemplate{static: "t"}, key: KeyNode, headers: true, maxBytes: 5000}
	pm, truncated := b.build(&orig, false, 0)
	if !truncated {
		t.Fatal("100 kB event not truncated at 5000 bytes")
	}
	if n := pm.ByteSize(2); n > 5000 {
		t.Fatalf("truncated message is %d bytes by sarama's count, limit 5000", n)
	}
	v, _ := pm.Value.Encode()
	var doc map[string]any
	if err := json.Unmarshal(v, &doc); err != nil {
		t.Fatalf("truncated value is not JSON: %v", err)
	}
	if doc["truncated"] != true || doc["original_bytes"] != float64(len(orig.Value)) || doc["kind"] != "alert" ||
		doc["event"].(map[string]any)["id"] != eventIDOf(42, "web1") {
		t.Fatalf("truncated value %s", v)
	}
	if h := doc["head"].(string); len(h) < 4000 || !strings.HasPrefix(string(orig.Value), h) {
		t.Fatalf("head has %d bytes or is not a prefix", len(h))
	}
	last := pm.Headers[len(pm.Headers)-1]
	if string(last.Key) != "truncated" || string(last.Value) != "true" {
		t.Fatalf("last header %s=%s", last.Key, last.Value)
	}

	// Escaping never breaks the budget or the JSON, whatever the bytes.
	nasty := append([]byte(`{"event":{"id":"n:1.0:1"},"x":"`), bytes.Repeat([]byte("\"\\\x01é\xff"), 5000)...)
	for budget := 300; budget < 2000; budget += 37 {
		v := truncatedValue(nasty, "audit", budget)
		if len(v) > budget || !json.Valid(v) {
			t.Fatalf("budget %d: %d bytes, valid %v", budget, len(v), json.Valid(v))
		}
	}
	// Huge headers: only the flag header is kept, the limit holds.
	huge := event(1, "web1", "audit", 3000)
	huge.Meta.Keys = []string{strings.Repeat("k", 6000)}
	pm, _ = b.build(&huge, false, 0)
	if n := pm.ByteSize(2); n > 5000 || len(pm.Headers) != 1 {
		t.Fatalf("with huge headers: %d bytes, %d headers", n, len(pm.Headers))
	}
}

// TestSCRAMVector checks the SCRAM-SHA-256 client against the exchange in
// RFC 7677 section 3.
func TestSCRAMVector(t *testing.T) {
	c := newSCRAMClient(scramSHA256)
	if err := c.Begin("user", "pencil", ""); err != nil {
		t.Fatal(err)
	}
	c.nonce = "rOprNGfwEbeRWgbNEkqO"
	first, err := c.Step("")
	if err != nil || first != "n,,n=user,r=rOprNGfwEbeRWgbNEkqO" {
		t.Fatalf("client-first %q, %v", first, err)
	}
	final, err := c.Step("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
	want := "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
	if err != nil || final != want {
		t.Fatalf("client-final %q, %v", final, err)
	}
	if c.Done() {
		t.Fatal("done before the server-final message")
	}
	if _, err := c.Step("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="); err != nil || !c.Done() {
		t.Fatalf("server-final: %v, done %v", err, c.Done())
	}

	// A server that does not know the password is rejected.
	c = newSCRAMClient(scramSHA256)
	_ = c.Begin("user", "pencil", "")
	c.nonce = "rOprNGfwEbeRWgbNEkqO"
	_, _ = c.Step("")
	_, _ = c.Step("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
	if _, err := c.Step("v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="); err == nil || c.Done() {
		t.Fatal("a wrong server signature was accepted")
	}
	for _, bad := range []string{
		"r=other,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",                      // nonce not ours
		"r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=10",        // too few iterations
		"r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=999999999", // too many
		"r=rOprNGfwEbeRWgbNEkqOx,i=4096",                                 // no salt
		"e=unknown-user",
	} {
		c := newSCRAMClient(scramSHA512)
		_ = c.Begin("user", "pencil", "")
		c.nonce = "rOprNGfwEbeRWgbNEkqO"
		_, _ = c.Step("")
		if _, err := c.Step(bad); err == nil {
			t.Errorf("server-first %q accepted", bad)
		} else if strings.Contains(err.Error(), "pencil") {
			t.Errorf("error shows the password: %v", err)
		}
	}
	if got := scramEscape("a=b,c"); got != "a=3Db=2Cc" {
		t.Fatalf("scramEscape = %q", got)
	}
}

func FuzzEventID(f *testing.F) {
	f.Add([]byte(event(1, "web1", "audit", 10).Value))
	f.Add([]byte(`{"event":{"id":"a\u0041\"b"}}`))
	f.Add([]byte(`{"event":{"id":"\`))
	f.Fuzz(func(t *testing.T, v []byte) {
		id := eventID(v)
		if len(id) > maxIDLen {
			t.Fatalf("id of %d bytes", len(id))
		}
		for _, budget := range []int{minValueBudget / 2, 1000} {
			out := truncatedValue(v, "audit", budget)
			if len(out) > budget || !json.Valid(out) {
				t.Fatalf("truncatedValue(budget %d) = %q", budget, out)
			}
		}
	})
}

func FuzzTopicTemplate(f *testing.F) {
	for _, s := range []string{"audit", "audit.{node}.{kind}", "{type}-x", "{", "a}{node}{", "{node}{node}"} {
		f.Add(s, "web1", "SYSCALL", "audit")
	}
	f.Fuzz(func(t *testing.T, tmpl, node, typ, kind string) {
		tt, err := parseTopic(tmpl)
		if err != nil {
			return
		}
		got := tt.topic(&sinks.Meta{Node: node, Types: []string{typ}, Kind: kind})
		if got == "" || len(got) > maxTopicLen || got == "." || got == ".." || !utf8.ValidString(got) {
			t.Fatalf("template %q gave topic %q", tmpl, got)
		}
		for _, r := range got {
			if !legalTopicByte(r) {
				t.Fatalf("template %q gave illegal topic %q", tmpl, got)
			}
		}
	})
}

func FuzzSCRAMServerFirst(f *testing.F) {
	f.Add("r=NONCEserver,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
	f.Add("r=NONCE,s=,i=1")
	f.Add("e=other-error")
	f.Fuzz(func(t *testing.T, msg string) {
		c := newSCRAMClient(scramSHA256)
		_ = c.Begin("user", "secret-password", "")
		c.nonce = "NONCE"
		_, _ = c.Step("")
		out, err := c.Step(msg)
		if err != nil && strings.Contains(err.Error(), "secret-password") {
			t.Fatalf("error shows the password: %v", err)
		}
		if err == nil && !strings.HasPrefix(out, "c=biws,r=NONCE") {
			t.Fatalf("client-final %q", out)
		}
	})
}
