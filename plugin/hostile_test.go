package plugin

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/conf"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit/audittest"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
)

var updateHostile = flag.Bool("update-hostile", false, "rewrite the small files of testdata/hostile")

// validateDocs checks JSON Lines output against docs/schema/event.schema.json.
func validateDocs(t testing.TB, out []byte) {
	t.Helper()
	audittest.ValidateJSONLines(t, out)
}

func hexU(s string) string { return strings.ToUpper(hex.EncodeToString([]byte(s))) }

// event returns the lines of one small exec event with serial n.
func event(n int, extra ...string) string {
	s := fmt.Sprintf("type=SYSCALL msg=audit(1700000000.%03d:%d): arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=0 items=0 ppid=1 pid=%d auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000 tty=pts0 ses=1 comm=\"sh\" exe=\"/bin/sh\" key=\"hostile\"\n", n%1000, n, 100+n)
	for _, e := range extra {
		s += fmt.Sprintf("type=%s msg=audit(1700000000.%03d:%d): %s\n", strings.SplitN(e, " ", 2)[0], n%1000, n, strings.SplitN(e, " ", 2)[1])
	}
	return s + fmt.Sprintf("type=EOE msg=audit(1700000000.%03d:%d): \n", n%1000, n)
}

// smallHostile are the committed hostile inputs (name -> content).
func smallHostile() map[string]string {
	gs := "\x1d"
	return map[string]string{
		"nul.log": event(1) + "type=SYSCALL msg=audit(1700000000.002:2): comm=\"a\x00b\" exe=\"/bin/x\x00\" key=(null)\n" + event(3),
		"invalid-utf8.log": event(1) + "type=SYSCALL msg=audit(1700000000.002:2): comm=\"\xff\xfe\xc3\" exe=\"/bin/\x80\" key=(null)\n" +
			"type=EOE msg=audit(1700000000.002:2): \n" + event(3),
		"forged-gs.log": "type=SYSCALL msg=audit(1700000000.001:1): arch=c000003e syscall=59 comm=\"x" + gs + "UID=\\\"root\\\"\" exe=\"/tmp/a" + gs + "AUID=root\" key=(null)" + gs + "ARCH=x86_64 UID=\"alice\"\n" +
			"type=EOE msg=audit(1700000000.001:1): \n" + event(2),
		"specials.log": event(1, "EXECVE argc=3 a0="+hexU("line1\nline2")+" a1="+hexU("<14>1 - - [x=\"y\\\"]\u00ef\u00bb\u00bf BOM]")+" a2="+hexU("tab\there\r\x7f\x1b[31m")) + event(2),
		"garbage.log":  "not an audit line\n" + "type=SYSCALL msg=audit(1700000000.001:1\n" + "node=only\n" + "type=\n" + event(1) + "\x00\x00\x00\n" + event(2),
	}
}

// hostileConfig returns a config that writes JSON to dir/out.jsonl and
// rejected input to dir/errors.log.
func hostileConfig(t *testing.T, dir string) *conf.Config {
	t.Helper()
	cfg, err := conf.Parse("hostile.toml", []byte(fmt.Sprintf(`
state_dir = %q
[log]
syslog = false
parse_errors = %q
parse_error_rate = 100000
[enrich.proc]
enabled = false
[[sink]]
type = "file"
[sink.file]
path = %q
max_bytes = 0
`, dir, filepath.Join(dir, "errors.log"), filepath.Join(dir, "out.jsonl"))))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

type replayResult struct {
	out, errlog []byte
	docs        []map[string]any
	heapDelta   int64
	counters    map[string]float64
}

func heapInuse() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}

// replayHostile runs one input file through plugin.Replay.
func replayHostile(t *testing.T, path string) *replayResult {
	t.Helper()
	dir := t.TempDir()
	cfg := hostileConfig(t, dir)
	before := heapInuse()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := Replay(context.Background(), cfg, log, []string{path}, ReplayOptions{}); err != nil {
		t.Fatalf("Replay: %v", err)
	}
	res := &replayResult{heapDelta: heapInuse() - before, counters: metrics.Default.Snapshot()}
	res.out, _ = os.ReadFile(filepath.Join(dir, "out.jsonl"))
	res.errlog, _ = os.ReadFile(filepath.Join(dir, "errors.log"))
	validateDocs(t, res.out)
	for _, l := range bytes.Split(res.out, []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		var d map[string]any
		if err := json.Unmarshal(l, &d); err != nil {
			t.Fatalf("bad document: %v", err)
		}
		res.docs = append(res.docs, d)
	}
	return res
}

func (r *replayResult) serials() []int {
	var s []int
	for _, d := range r.docs {
		s = append(s, int(d["event"].(map[string]any)["serial"].(float64)))
	}
	return s
}

func (r *replayResult) doc(t *testing.T, serial int) map[string]any {
	t.Helper()
	for _, d := range r.docs {
		if int(d["event"].(map[string]any)["serial"].(float64)) == serial {
			return d
		}
	}
	t.Fatalf("no document for serial %d (have %v)", serial, r.serials())
	return nil
}

func (r *replayResult) wantError(t *testing.T, reason string) {
	t.Helper()
	if !bytes.Contains(r.errlog, []byte("reason="+reason+" ")) {
		t.Errorf("parse-error log has no reason=%s entry:\n%.2000s", reason, r.errlog)
	}
}

func field(d map[string]any, rec int, name string) any {
	return d["records"].([]any)[rec].(map[string]any)["fields"].(map[string]any)[name]
}

// heapBound is the most the heap may grow across one hostile replay once
// the pipeline is closed (everything it held must be released).
const heapBound = 32 << 20

func TestHostileCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "hostile")
	small := smallHostile()
	if *updateHostile {
		for name, content := range small {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, content := range small {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(b) != content {
			t.Fatalf("%s is missing or stale (go test ./plugin -run TestHostileCorpus -update-hostile): %v", name, err)
		}
	}
	run := func(t *testing.T, path string) *replayResult {
		if !filepath.IsAbs(path) {
			path = filepath.Join(dir, path)
		}
		res := replayHostile(t, path)
		if res.heapDelta > heapBound {
			t.Errorf("%s: heap grew by %d bytes (bound %d)", path, res.heapDelta, heapBound)
		}
		t.Logf("%s: heap in use after - before = %d bytes", filepath.Base(path), res.heapDelta)
		return res
	}
	t.Run("nul", func(t *testing.T) {
		res := run(t, "nul.log")
		res.wantError(t, "nul_byte")
		if f := field(res.doc(t, 2), 0, "comm"); f != "a\x00b" {
			t.Errorf("comm %q", f)
		}
		if len(res.docs) != 3 {
			t.Errorf("serials %v, want 1 2 3", res.serials())
		}
	})
	t.Run("invalid-utf8", func(t *testing.T) {
		res := run(t, "invalid-utf8.log")
		res.wantError(t, "invalid_utf8")
		d := res.doc(t, 2)
		if f := field(d, 0, "comm"); f != `\xff\xfe\xc3` {
			t.Errorf("comm %q, want the \\xHH form", f)
		}
		esc := fmt.Sprint(d["records"].([]any)[0].(map[string]any)["escaped"])
		if !strings.Contains(esc, "fields.comm") || !strings.Contains(esc, "fields.exe") {
			t.Errorf("escaped %s", esc)
		}
		if len(res.docs) != 3 {
			t.Errorf("serials %v", res.serials())
		}
	})
	t.Run("forged-gs", func(t *testing.T) {
		res := run(t, "forged-gs.log")
		d := res.doc(t, 1)
		rec := d["records"].([]any)[0].(map[string]any)
		en := rec["enriched"].(map[string]any)
		if len(en) != 2 || en["UID"] != "alice" || en["ARCH"] != "x86_64" {
			t.Errorf("enriched %v: the forged 0x1D inside quotes leaked", en)
		}
		if f := field(d, 0, "comm"); f != "x\x1dUID=\\" {
			// the kernel never quotes a value with a quote inside; the
			// parser ends the value at the next quote
			t.Logf("comm %q", f)
		}
		if rec["line"] == nil {
			t.Error("irregular record without its line")
		}
		res.doc(t, 2)
	})
	t.Run("specials", func(t *testing.T) {
		res := run(t, "specials.log")
		args := res.doc(t, 1)["process"].(map[string]any)["args"].([]any)
		want := []string{"line1\nline2", "<14>1 - - [x=\"y\\\"]\u00ef\u00bb\u00bf BOM]", "tab\there\r\x7f\x1b[31m"}
		if fmt.Sprint(args) != fmt.Sprint(want) {
			t.Errorf("args %q, want %q", args, want)
		}
		if bytes.Count(res.out, []byte("\n")) != len(res.docs) {
			t.Error("a raw newline escaped into the output")
		}
	})
	t.Run("garbage", func(t *testing.T) {
		res := run(t, "garbage.log")
		for _, r := range []string{"no_type", "bad_timestamp", "truncated", "nul_byte"} {
			res.wantError(t, r)
		}
		if fmt.Sprint(res.serials()) != "[1 2]" {
			t.Errorf("serials %v", res.serials())
		}
	})
	big := t.TempDir()
	t.Run("1MiB-lines", func(t *testing.T) {
		p := filepath.Join(big, "long.log")
		long := "type=SYSCALL msg=audit(1700000000.005:5): comm=" + strings.Repeat("41", 1<<19) + "\n"
		node := "node=" + strings.Repeat("n", 1<<20) + " " + event(6)
		if err := os.WriteFile(p, []byte(event(1)+long+event(2)+long+long+node+event(3)), 0o644); err != nil {
			t.Fatal(err)
		}
		res := run(t, p)
		res.wantError(t, "too_long")
		if got := res.counters[`audisp_enrich_input_errors_total{reason="too_long"}`]; got != 4 {
			t.Errorf("too_long counted %v, want 4", got)
		}
		if fmt.Sprint(res.serials()) != "[1 2 6 3]" && fmt.Sprint(res.serials()) != "[1 2 3 6]" {
			// the node= line is too long; its EOE and the rest of event 6 stay
			t.Logf("serials %v", res.serials())
		}
		for _, s := range []int{1, 2, 3} {
			res.doc(t, s)
		}
		if bytes.Contains(res.errlog, []byte(strings.Repeat("41", 4096))) {
			t.Error("the parse-error log holds more than a bounded head of the long line")
		}
	})
	t.Run("huge-node", func(t *testing.T) {
		p := filepath.Join(big, "node.log")
		name := strings.Repeat("h", 60000)
		var b strings.Builder
		for _, l := range strings.Split(strings.TrimSpace(event(7)), "\n") {
			b.WriteString("node=" + name + " " + l + "\n")
		}
		if err := os.WriteFile(p, []byte(b.String()+event(8)), 0o644); err != nil {
			t.Fatal(err)
		}
		res := run(t, p)
		if h := res.doc(t, 7)["host"].(map[string]any)["name"]; h != name {
			t.Errorf("host.name has %d bytes", len(h.(string)))
		}
		res.doc(t, 8)
	})
	t.Run("100k-execve-args", func(t *testing.T) {
		testsupport.SkipShort(t, "100000 arguments in one event: half a minute under -race")
		p := filepath.Join(big, "args.log")
		const n = 100000
		var b strings.Builder
		b.WriteString(strings.Split(event(9), "\n")[0] + "\n")
		rec := "type=EXECVE msg=audit(1700000000.009:9): argc=100000"
		for i := 0; i < n; i++ {
			a := fmt.Sprintf(" a%d=\"x%d\"", i, i)
			if len(rec)+len(a) > 8000 {
				b.WriteString(rec + "\n")
				rec = "type=EXECVE msg=audit(1700000000.009:9):" // continuation: no argc=
			}
			rec += a
		}
		b.WriteString(rec + "\ntype=EOE msg=audit(1700000000.009:9): \n" + event(10))
		if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		res := run(t, p)
		proc := res.doc(t, 9)["process"].(map[string]any)
		args := proc["args"].([]any)
		if proc["args_count"] != float64(n) || len(args) != n || args[0] != "x0" || args[n-1] != fmt.Sprintf("x%d", n-1) {
			t.Errorf("args_count %v, %d args", proc["args_count"], len(args))
		}
		res.doc(t, 10)
	})
}

// TestHostileBinary runs truncated and garbage binary streams through
// Reader and Pipeline: every complete frame still becomes a document.
func TestHostileBinary(t *testing.T) {
	var in []byte
	for i, l := range strings.Split(strings.TrimSpace(event(1)+event(2)), "\n") {
		in = append(in, frame(1, 1300, l, false)...)
		if i == 2 {
			in = append(in, []byte("\xde\xad\xbe\xef junk \x00\x00")...)
		}
	}
	in = append(in, frame(1, 1300, "type=SYSCALL msg=audit(1700000000.003:3): a=1", false)[:30]...)
	dir := t.TempDir()
	cfg := hostileConfig(t, dir)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := &metrics.Registry{}
	p, err := NewPipeline(cfg, log, reg, true)
	if err != nil {
		t.Fatal(err)
	}
	stats := NewInputStats(reg)
	var reasons []string
	rd, err := NewReader(&trickle{r: bytes.NewReader(in)}, FramingBinaryAuto, 64<<10, stats, func(e *InputError) { reasons = append(reasons, e.Reason) })
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan Batch, 8)
	go func() { _ = rd.RunBlocking(ch); close(ch) }()
	for b := range ch {
		p.handleBatch(b, "bin.dat")
	}
	p.Close(context.Background())
	out, _ := os.ReadFile(filepath.Join(dir, "out.jsonl"))
	validateDocs(t, out)
	if n := bytes.Count(out, []byte("\n")); n != 2 {
		t.Errorf("%d documents, want 2:\n%s", n, out)
	}
	if stats.Errors["bad_frame"].Value() != 2 || len(reasons) != 2 {
		t.Errorf("bad_frame %d, reports %v; want 2 (garbage, truncated frame)", stats.Errors["bad_frame"].Value(), reasons)
	}
}

// TestTruncatedLastLine: a log whose last line was cut inside a quoted
// value (auditd stopped mid-write, a log still being written) gives no
// made-up value: the line is rejected as truncated and flagged no_newline,
// both in the rejected-input log, and the events before it are whole.
func TestTruncatedLastLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "trunc.log")
	cut := `type=SYSCALL msg=audit(1700000000.009:9): arch=c000003e syscall=59 success=yes exit=0 ppid=1 pid=2 uid=0 comm="bash" exe="/usr/bin/ba`
	if err := os.WriteFile(path, []byte(event(1)+cut), 0o644); err != nil {
		t.Fatal(err)
	}
	res := replayHostile(t, path)
	if s := res.serials(); len(s) != 1 || s[0] != 1 {
		t.Errorf("documents of serials %v, want only 1 (the cut line is rejected)", s)
	}
	if bytes.Contains(res.out, []byte(`"/usr/bin/ba"`)) {
		t.Errorf("the cut value was written as a whole one:\n%s", res.out)
	}
	res.wantError(t, "truncated")
	res.wantError(t, "no_newline")
}

// TestCRLFLog: a log with CRLF line ends (copied through a Windows tool or
// a SIEM export) is read as auditd wrote it: the \r ends no value (the
// outcome, the null key and the hex proctitle are read), and the file is
// flagged crlf once in the rejected-input log, saying its lines are
// processed.
func TestCRLFLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "crlf.log")
	lines := []string{
		`type=USER_LOGIN msg=audit(1700000000.100:1): pid=1 uid=0 auid=0 ses=1 msg='op=login acct="root" exe="/usr/sbin/sshd" hostname=? addr=1.2.3.4 terminal=ssh res=failed'`,
		`type=SYSCALL msg=audit(1700000001.100:2): arch=c000003e syscall=59 success=yes exit=0 pid=5 comm="x" key=(null)`,
		`type=PROCTITLE msg=audit(1700000001.100:2): proctitle=6C73`,
	}
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\r\n")+"\r\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res := replayHostile(t, path)
	if bytes.Contains(res.out, []byte(`\r`)) {
		t.Errorf("a \\r reached the documents:\n%s", res.out)
	}
	if got := res.doc(t, 1)["event"].(map[string]any)["outcome"]; got != "failure" {
		t.Errorf("USER_LOGIN res=failed: event.outcome %v, want failure", got)
	}
	d := res.doc(t, 2)
	title := d["process"].(map[string]any)["title"]
	if field(d, 0, "key") != nil || d["tags"] != nil || title != "ls" {
		t.Errorf("SYSCALL key %v, tags %v, process.title %v: want null, none, ls", field(d, 0, "key"), d["tags"], title)
	}
	if n := bytes.Count(res.errlog, []byte("reason=crlf ")); n != 1 || !bytes.Contains(res.errlog, []byte("lines are processed")) {
		t.Errorf("%d crlf entries in the rejected-input log, want 1 saying the lines are processed:\n%s", n, res.errlog)
	}
}

// TestStrayEOECounted: an EOE that closes no event (its event was already
// emitted, or all its records were rejected) is counted in
// audisp_enrich_reassembler_stray_eoe_total.
func TestStrayEOECounted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stray.log")
	in := event(1) + "type=EOE msg=audit(1700000000.001:1): \n" + // event 1 again: already emitted
		"type=SYSCALL msg=audit(1700000000.007:7): comm=\"x\" exe=\"/bin/x" + "\n" + // rejected: truncated
		"type=EOE msg=audit(1700000000.007:7): \n" + event(2)
	if err := os.WriteFile(path, []byte(in), 0o644); err != nil {
		t.Fatal(err)
	}
	res := replayHostile(t, path)
	if got, ok := res.counters["audisp_enrich_reassembler_stray_eoe_total"]; !ok || got != 2 {
		t.Errorf("audisp_enrich_reassembler_stray_eoe_total = %v (registered %v), want 2", got, ok)
	}
	if s := res.serials(); len(s) != 2 {
		t.Errorf("documents of serials %v, want 1 and 2", s)
	}
}

// TestReplayBinaryFile: replay of a binary plugin stream (a file of
// dispatcher frames) says the file is not an audit.log text file, without
// the plugin's advice about [input] format (replay reads text only), and
// goes on with the next file.
func TestReplayBinaryFile(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin.dat")
	text := filepath.Join(dir, "audit.log")
	if err := os.WriteFile(bin, frame(0, 1300, "audit(1700000000.001:1): arch=c000003e syscall=59", true), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(text, []byte(event(2)), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := hostileConfig(t, dir)
	var warned []error
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	err := Replay(context.Background(), cfg, log, []string{bin, text}, ReplayOptions{Warn: func(e error) { warned = append(warned, e) }})
	if !errors.Is(err, ErrFilesFailed) || len(warned) != 1 {
		t.Fatalf("Replay: %v, warnings %v; want ErrFilesFailed and one warning", err, warned)
	}
	msg := warned[0].Error()
	if !strings.HasPrefix(msg, bin+": not an audit.log text file") || strings.Contains(msg, "[input]") {
		t.Errorf("warning %q, want %q without advice about [input] format", msg, bin+": not an audit.log text file ...")
	}
	out, _ := os.ReadFile(filepath.Join(dir, "out.jsonl"))
	if n := bytes.Count(out, []byte("\n")); n != 1 {
		t.Errorf("%d documents, want 1 (the text file's event):\n%s", n, out)
	}
}
