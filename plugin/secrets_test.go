package plugin_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
)

// The secrets of these tests. Each has a distinctive core, so that a cut
// or partly quoted secret is found too.
const (
	secretVTKey   = "vtk-7Hq9Xc2LmP4wRt5Y-0b1d2e3f4a5b6c7d8e9f"
	secretVTCore  = "7Hq9Xc2LmP4wRt5Y"
	secretSASL    = "sasl-Pw0rdR8tK3vN6-mustNotShow"
	secretSASLCor = "Pw0rdR8tK3vN6"
	// secretLetters is a password of letters only, for the unquoted case.
	secretLetters = "zqxjvkwpfmbgtrsnhd"
	// kfakePass is the broker's real password; the plugin is configured
	// with secretSASL, which is wrong.
	kfakeUser = "audisp"
	kfakePass = "the-right-password"
)

// leakForms lists what must never appear: each secret raw, its core, and
// its base64 and hex forms (SASL PLAIN and HTTP basic auth use base64).
func leakForms() map[string]string {
	m := map[string]string{}
	for name, s := range map[string]string{"VirusTotal key": secretVTKey, "SASL password": secretSASL} {
		m[s] = name
		m[base64.StdEncoding.EncodeToString([]byte(s))] = name + " (base64)"
		m[hex.EncodeToString([]byte(s))] = name + " (hex)"
	}
	m[secretVTCore] = "VirusTotal key (part)"
	m[secretSASLCor] = "SASL password (part)"
	m[secretLetters] = "letters-only SASL password"
	m[base64.StdEncoding.EncodeToString([]byte("\x00"+kfakeUser+"\x00"+secretSASL))] = "SASL PLAIN message (base64)"
	return m
}

// assertNoSecret fails when any form of a secret occurs in b.
func assertNoSecret(t *testing.T, what string, b []byte) {
	t.Helper()
	for form, name := range leakForms() {
		if i := bytes.Index(b, []byte(form)); i >= 0 {
			lo, hi := max(0, i-200), min(len(b), i+len(form)+200)
			t.Errorf("%s leaks the %s:\n…%s…", what, name, b[lo:hi])
		}
	}
}

// assertTreeHasNoSecret checks every file under dir except those in skip
// (the config and key files, which hold the secrets by design).
func assertTreeHasNoSecret(t *testing.T, dir string, skip ...string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Type()&fs.ModeType != 0 {
			return err
		}
		for _, s := range skip {
			if path == s {
				return nil
			}
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		n++
		assertNoSecret(t, path, b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// vtErrorServer answers every request like VirusTotal's API v3 does on failure:
// the given status with an error document {"error":{"code","message"}}
// (application/json). The message echoes the x-apikey header, as a
// hostile or buggy proxy might, so the plugin must redact what it logs.
type vtErrorServer struct {
	srv  *httptest.Server
	mu   sync.Mutex
	keys []string // x-apikey of each request
}

func newVTErrorServer(t *testing.T, status int) *vtErrorServer {
	f := &vtErrorServer{}
	code := map[int]string{
		401: "WrongCredentialsError",
		429: "QuotaExceededError",
		// 500 has no documented code; a real 500 carries an unlisted one.
		500: "InternalError",
	}[status]
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("x-apikey")
		f.mu.Lock()
		f.keys = append(f.keys, key)
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"error": {"code": %q, "message": "request %s with key %s failed"}}`, code, r.URL.Path, key)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *vtErrorServer) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.keys...)
}

// secretsInput is three IMA measurements (VirusTotal lookups), the
// capture, and one line that is not an audit record (the parse-error log).
// The measurements are stamped 10 s before the capture, so that in replay
// the capture's record time closes them (single-record events have no
// EOE) while the stream runs, rather than the final flush at shutdown.
func secretsInput(t *testing.T) []string {
	first := captureLines(t)
	var lines []string
	for i, d := range testDigests {
		lines = append(lines, imaEvent(1795618611, 800000+i, fmt.Sprintf("/tmp/secret%d", i), d))
	}
	lines = append(lines, first...)
	return append(lines, "garbage that is not a record")
}

type secretsRun struct {
	mode   string // replay | plugin
	vt     int    // 0: host unreachable; else the fake's HTTP status
	keySrc string // config | file | env
}

// TestSecretsNeverLogged runs the plugin (replay and plugin mode) with a
// VirusTotal key (from the config, a key file or the environment) and a
// Kafka SASL password under failure modes: VirusTotal unreachable or
// answering 401, 429 or 500; one Kafka sink whose broker is unreachable
// and one against kfake with SASL where the password is wrong. It
// collects every log line (stderr, syslog off), the parse-error log, the
// output documents (stdout and file sinks), the SIGUSR1 state dump, the
// stats output, /metrics and every file in the state directory, and finds
// neither secret in any of them.
func TestSecretsNeverLogged(t *testing.T) {
	dir := t.TempDir()
	bin := testsupport.PluginBinary(t)
	input := filepath.Join(dir, "input.log")
	lines := secretsInput(t)
	writeFile(t, input, strings.Join(lines, "\n")+"\n")

	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "audit"), kfake.EnableSASL(),
		kfake.Superuser("SCRAM-SHA-256", kfakeUser, kfakePass))
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(kc.Close)
	kafkaAddr := kc.ListenAddrs()[0]

	runs := []secretsRun{
		{"replay", 0, "config"}, {"replay", 401, "file"}, {"replay", 429, "env"}, {"replay", 500, "config"},
		{"plugin", 0, "env"}, {"plugin", 401, "config"}, {"plugin", 429, "file"}, {"plugin", 500, "file"},
	}
	for _, r := range runs {
		t.Run(fmt.Sprintf("%s-vt%d-key_%s", r.mode, r.vt, r.keySrc), func(t *testing.T) {
			if r.mode == "replay" && (r.vt != 401 || r.keySrc != "file") {
				// One replay run and the four plugin runs still cover both
				// modes, every key source and every VirusTotal failure.
				testsupport.SkipShort(t, "the other replay runs wait out VirusTotal timeouts")
			}
			runSecrets(t, bin, input, len(lines), kafkaAddr, r)
		})
	}
}

func runSecrets(t *testing.T, bin, input string, nLines int, kafkaAddr string, r secretsRun) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o750); err != nil {
		t.Fatal(err)
	}
	host := "http://127.0.0.1:1"
	var fake *vtErrorServer
	if r.vt != 0 {
		fake = newVTErrorServer(t, r.vt)
		host = fake.srv.URL
	}
	keyFile := filepath.Join(dir, "vt.key")
	var keyLine string
	env := []string{}
	switch r.keySrc {
	case "config":
		keyLine = fmt.Sprintf("api_key = %q", secretVTKey)
	case "file":
		// 0644: readable by others, so the plugin warns about the file
		// (naming it, not its content).
		if err := os.WriteFile(keyFile, []byte(secretVTKey+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		keyLine = fmt.Sprintf("api_key_file = %q", keyFile)
	case "env":
		env = append(env, "AUDISP_ENRICH_VT_API_KEY="+secretVTKey)
	}
	listen := ""
	if r.mode == "plugin" {
		listen = fmt.Sprintf("127.0.0.1:%d", testsupport.FreePort(t, "tcp"))
	}
	out := filepath.Join(dir, "events.json")
	parseErrs := filepath.Join(dir, "parse-errors.log")
	cfg := filepath.Join(dir, "config.toml")
	writeFile(t, cfg, fmt.Sprintf(`user = "root"
state_dir = %[1]q
[log]
level = "debug"
syslog = false
parse_errors = %[2]q
[status]
interval = "1s"
listen = %[3]q
[reassembly]
eoe_timeout = "200ms"
[enrich]
timeout = "1s"
[enrich.virustotal]
enabled = true
%[4]s
host = %[5]q
timeout = "500ms"
max_wait = "400ms"
per_minute = 0
state_dir = %[1]q
[[sink]]
name = "stdout"
type = "stdout"
[[sink]]
name = "events"
type = "file"
[sink.file]
path = %[6]q
[[sink]]
name = "kafka-down"
type = "kafka"
[sink.kafka]
brokers = ["127.0.0.1:%[7]d"]
dial_timeout = "200ms"
sasl_mechanism = "PLAIN"
sasl_user = %[8]q
sasl_password = %[9]q
[sink.buffer]
type = "memory"
[sink.delivery]
backoff_min = "50ms"
backoff_max = "200ms"
[[sink]]
name = "kafka-sasl"
type = "kafka"
[sink.kafka]
brokers = [%[10]q]
dial_timeout = "1s"
sasl_mechanism = "SCRAM-SHA-256"
sasl_user = %[8]q
sasl_password = %[9]q
[sink.buffer]
type = "disk"
[sink.delivery]
backoff_min = "50ms"
backoff_max = "200ms"
`, state, parseErrs, listen, keyLine, host, out, testsupport.FreePort(t, "tcp"), kfakeUser, secretSASL, kafkaAddr))

	// The log line that shows the VirusTotal failure was met.
	vtFailure := map[int]string{0: "virustotal: lookup failed", 401: "API KEY WAS REJECTED", 429: "quota exceeded", 500: "virustotal: lookup failed"}[r.vt]
	var stdout, stderr testsupport.SyncBuffer
	var extra [][2]string // other captured text: name, content
	args := []string{"--config", cfg}
	if r.mode == "replay" {
		// Replay from a pipe, so the test decides when the input ends:
		// at the end of input the VirusTotal enricher is closed at once.
		args = []string{"replay", "--config", cfg, "-"}
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	in, err := os.ReadFile(input)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stdin.Write(in); err != nil {
		t.Fatal(err)
	}
	// Let the failures happen: the SASL handshake fails, and VirusTotal
	// answers (or is found unreachable).
	if !testsupport.Until(10*time.Second, func() bool {
		s := stderr.String()
		return strings.Contains(s, "sink=kafka-sasl") && strings.Contains(s, "sink=kafka-down") && strings.Contains(s, vtFailure)
	}) {
		t.Errorf("the failures did not all show in the log within 10s (want kafka-down, kafka-sasl and %q):\n%s", vtFailure, stderr.String())
	}
	if r.mode == "plugin" {
		_ = cmd.Process.Signal(syscall.SIGUSR1)
		statePath := filepath.Join(state, "state.json")
		if !testsupport.Until(3*time.Second, func() bool { _, err := os.Stat(statePath); return err == nil }) {
			t.Errorf("no state dump after SIGUSR1")
		}
		st, err := exec.Command(bin, "stats", "--config", cfg).CombinedOutput()
		if err != nil {
			t.Errorf("stats: %v\n%s", err, st)
		}
		extra = append(extra, [2]string{"stats output", string(st)})
		m, err := scrapeURL(listen)
		if err != nil {
			t.Errorf("scrape: %v", err)
		}
		extra = append(extra, [2]string{"/metrics", m})
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Errorf("%s exit: %v\n%s", r.mode, err, stderr.String())
	}

	logs := stderr.String()
	if fake != nil {
		// The key really went out, from the configured source.
		keys := fake.requests()
		if len(keys) == 0 {
			t.Errorf("the fake VirusTotal got no request")
		}
		for _, k := range keys {
			if k != secretVTKey {
				t.Errorf("the fake VirusTotal got x-apikey %q, want the configured key", k)
			}
		}
	}
	if r.keySrc == "file" && !strings.Contains(logs, "readable by others") {
		t.Errorf("no warning about the world-readable key file:\n%s", logs)
	}
	docs := stdout.String()
	if n := strings.Count(docs, "\n"); n < 234 {
		t.Errorf("stdout sink wrote %d documents, want at least the capture's 234", n)
	}
	if pe, _ := os.ReadFile(parseErrs); !bytes.Contains(pe, []byte("garbage that is not a record")) {
		t.Errorf("parse-error log lacks the bad line: %q", pe)
	}

	assertNoSecret(t, "stderr (log)", []byte(logs))
	assertNoSecret(t, "stdout (documents)", []byte(docs))
	for _, e := range extra {
		assertNoSecret(t, e[0], []byte(e[1]))
	}
	files := assertTreeHasNoSecret(t, dir, cfg, keyFile)
	t.Logf("checked %d log bytes, %d document bytes, %d other outputs and %d files (state.json, vt.db, spools, events, parse errors)",
		len(logs), len(docs), len(extra), files)
}

// TestSecretsNotInConfigErrors: check-config, plugin mode and replay on
// configs with a secret next to a bad value, an unknown key, a syntax
// error, or a bad key file report the problem without the secret;
// print-default-config prints no key from the environment.
func TestSecretsNotInConfigErrors(t *testing.T) {
	dir := t.TempDir()
	bin := testsupport.PluginBinary(t)
	sink := func(extra string) string {
		return fmt.Sprintf(`[[sink]]
type = "kafka"
[sink.kafka]
brokers = ["127.0.0.1:9"]
sasl_mechanism = "PLAIN"
sasl_user = "u"
sasl_password = %q
%s`, secretSASL, extra)
	}
	writableKey := filepath.Join(dir, "writable.key")
	if err := os.WriteFile(writableKey, []byte(secretVTKey), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(writableKey, 0o666); err != nil {
		t.Fatal(err)
	}
	spaceKey := filepath.Join(dir, "space.key")
	if err := os.WriteFile(spaceKey, []byte(secretVTCore+" "+secretVTKey), 0o600); err != nil {
		t.Fatal(err)
	}
	vt := func(keyLine, extra string) string {
		return fmt.Sprintf("user = \"root\"\nstate_dir = %q\n[log]\nsyslog = false\n[enrich.virustotal]\nenabled = true\n%s\n%s\n", dir, keyLine, extra)
	}
	apiKey := fmt.Sprintf("api_key = %q", secretVTKey)
	cases := map[string]struct {
		config string
		want   string // in the error
		loads  bool   // check-config accepts it (the problem shows at start)
	}{
		"bad value next to the key":      {vt(apiKey, `timeout = "-1s"`), "timeout", false},
		"key and key file both set":      {vt(apiKey, fmt.Sprintf("api_key_file = %q", writableKey)), "api_key_file", false},
		"unknown key next to the key":    {vt(apiKey, `tiemout = "1s"`), "tiemout", false},
		"bad value next to the password": {vt(apiKey, "") + sink(`compression = "bogus"`), "compression", false},
		"unknown key next to password":   {vt(apiKey, "") + sink(`pasword = "x"`), "pasword", false},
		"syntax error on the key line":   {vt(fmt.Sprintf("api_key = %q junk", secretVTKey), ""), "config.toml", false},
		"unterminated key string":        {vt(`api_key = "`+secretVTKey, ""), "config.toml", false},
		"unquoted key":                   {vt(`api_key = `+secretVTKey, ""), "config.toml", false},
		"unquoted password":              {vt(apiKey, "") + strings.Replace(sink(""), fmt.Sprintf("%q", secretSASL), secretSASL, 1), "config.toml", false},
		"password where a list belongs":  {vt(apiKey, "") + strings.Replace(sink(""), `["127.0.0.1:9"]`, fmt.Sprintf("%q", secretSASL), 1), "brokers", false},
		// An unquoted secret made of letters and digits only: the TOML
		// parser quotes the bare token it could not read.
		"unquoted alphanumeric key":      {vt(`api_key = `+secretVTCore, ""), "config.toml", false},
		"unquoted alphanumeric password": {vt(apiKey, "") + strings.Replace(sink(""), fmt.Sprintf("%q", secretSASL), secretSASLCor, 1), "config.toml", false},
		"unquoted letters-only password": {vt(apiKey, "") + strings.Replace(sink(""), fmt.Sprintf("%q", secretSASL), secretLetters, 1), "config.toml", false},
		"world-writable key file":        {vt(fmt.Sprintf("api_key_file = %q", writableKey), ""), "writable", true},
		"key with whitespace":            {vt(fmt.Sprintf("api_key_file = %q", spaceKey), ""), "whitespace", true},
	}
	for name, c := range cases {
		t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
			cd := t.TempDir()
			cfg := filepath.Join(cd, "config.toml")
			writeFile(t, cfg, c.config)
			out, err := exec.Command(bin, "check-config", cfg).CombinedOutput()
			if (err == nil) != c.loads {
				t.Errorf("check-config: err %v, want accepted=%v:\n%s", err, c.loads, out)
			}
			assertNoSecret(t, "check-config output", out)
			// Plugin mode and replay: the error at start-up.
			for _, args := range [][]string{{"--config", cfg}, {"replay", "--config", cfg, "-"}} {
				cmd := exec.Command(bin, args...)
				cmd.Env = []string{}
				cmd.Stdin = strings.NewReader("")
				o, err := cmd.CombinedOutput()
				if err == nil {
					t.Errorf("%v started with a bad config:\n%s", args, o)
				}
				if !strings.Contains(string(o), c.want) {
					t.Errorf("%v: error does not name %q:\n%s", args, c.want, o)
				}
				assertNoSecret(t, fmt.Sprintf("%v output", args), o)
				out = append(out, o...)
			}
			t.Logf("%s", bytes.TrimSpace(out))
		})
	}

	cmd := exec.Command(bin, "print-default-config")
	cmd.Env = []string{"AUDISP_ENRICH_VT_API_KEY=" + secretVTKey}
	out, err := cmd.Output()
	if err != nil || !bytes.Contains(out, []byte("[enrich.virustotal]")) {
		t.Fatalf("print-default-config: %v\n%s", err, out)
	}
	assertNoSecret(t, "print-default-config", out)
}
