package plugin

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
)

// trickle returns at most 1..7 bytes per Read, like a pipe under load.
type trickle struct {
	r io.Reader
	n int
}

func (t *trickle) Read(p []byte) (int, error) {
	t.n = t.n%7 + 1
	if len(p) > t.n {
		p = p[:t.n]
	}
	return t.r.Read(p)
}

type readResult struct {
	lines   []string
	numbers []int64       // the line number of each of lines
	errs    []*InputError // the reports to be logged
	silent  []*InputError // the reports to be counted only
	stats   *InputStats
	err     error
	reader  *Reader
}

func (r *readResult) count(reason string) uint64 { return r.stats.Errors[reason].Value() }

// readAll runs a Reader over in and collects what it hands out.
func readAll(t testing.TB, in io.Reader, framing string, maxLine int) *readResult {
	t.Helper()
	res := &readResult{stats: NewInputStats(&metrics.Registry{})}
	rd, err := NewReader(in, framing, maxLine, res.stats, func(e *InputError) {
		if e.Silent {
			res.silent = append(res.silent, e)
			return
		}
		res.errs = append(res.errs, e)
	})
	if err != nil {
		t.Fatal(err)
	}
	res.reader = rd
	ch := make(chan Batch, 4)
	done := make(chan error, 1)
	go func() { done <- rd.RunBlocking(ch); close(ch) }()
	for b := range ch {
		res.lines = append(res.lines, b.Lines...)
		nums := b.numbers()
		for range b.Lines {
			res.numbers = append(res.numbers, nums.number())
		}
	}
	res.err = <-done
	return res
}

// fixtureLines reads the clean lines (valid UTF-8, no NUL) of the audit
// fixtures of plugin/audit/testdata.
func fixtureLines(t testing.TB) []string {
	logs, _ := filepath.Glob("audit/testdata/*.log")
	var lines []string
	for _, p := range logs {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if l != "" && utf8.ValidString(l) && strings.IndexByte(l, 0) < 0 {
				lines = append(lines, l)
			}
		}
	}
	if len(lines) < 20 {
		t.Fatalf("only %d fixture lines", len(lines))
	}
	return lines
}

func TestNewReaderFraming(t *testing.T) {
	if _, err := NewReader(strings.NewReader(""), "json", 0, NewInputStats(&metrics.Registry{}), func(*InputError) {}); err == nil || !strings.Contains(err.Error(), "json") {
		t.Errorf("unknown framing accepted or not named: %v", err)
	}
}

func TestStringFramingPartialReads(t *testing.T) {
	lines := fixtureLines(t)
	in := strings.Join(lines, "\n") + "\n\n" // a blank line is skipped
	res := readAll(t, &trickle{r: strings.NewReader(in)}, FramingString, 64<<10)
	if res.err != nil {
		t.Fatal(res.err)
	}
	if len(res.lines) != len(lines) {
		t.Fatalf("%d lines, want %d", len(res.lines), len(lines))
	}
	for i := range lines {
		if res.lines[i] != lines[i] {
			t.Fatalf("line %d: %q, want %q", i, res.lines[i], lines[i])
		}
	}
	if got := res.stats.Lines.Value(); got != uint64(len(lines)) {
		t.Errorf("lines counter %d", got)
	}
	if got := res.stats.Bytes.Value(); got != uint64(len(in)) {
		t.Errorf("bytes counter %d, want %d", got, len(in))
	}
	if len(res.errs) != 0 {
		t.Errorf("errors on clean input: %v", res.errs[0])
	}
}

func TestStringFramingLimits(t *testing.T) {
	ok1 := "type=EOE msg=audit(1.000:1): "
	ok2 := "type=EOE msg=audit(1.000:2): "
	ok3 := "type=EOE msg=audit(1.000:3):"
	long1 := "type=SYSCALL msg=audit(1.000:9): a0=" + strings.Repeat("A", 5000)   // over 1024, inside the buffer
	long2 := "type=SYSCALL msg=audit(1.000:9): a0=" + strings.Repeat("B", 100000) // over the buffer too
	exact := "type=X msg=audit(1.000:4): a=" + strings.Repeat("C", 1024-len("type=X msg=audit(1.000:4): a="))
	nul := "type=SYSCALL msg=audit(1.000:5): comm=\"a\x00b\""
	bad := "type=SYSCALL msg=audit(1.000:6): comm=\"\xff\xfe\""
	in := ok1 + "\n" + long1 + "\n" + ok2 + "\n" + long2 + "\n" + exact + "\n" + nul + "\n" + bad + "\n" + ok3 // last line: no newline
	res := readAll(t, &trickle{r: strings.NewReader(in)}, FramingString, 1024)
	if res.err != nil {
		t.Fatal(res.err)
	}
	want := []string{ok1, ok2, exact, nul, bad, ok3}
	if strings.Join(res.lines, "|") != strings.Join(want, "|") {
		t.Fatalf("lines:\n%q\nwant\n%q", res.lines, want)
	}
	for reason, n := range map[string]uint64{"too_long": 2, "nul_byte": 1, "invalid_utf8": 1, "no_newline": 1, "bad_frame": 0} {
		if got := res.count(reason); got != n {
			t.Errorf("%s counted %d, want %d", reason, got, n)
		}
	}
	if len(res.errs) != 5 {
		t.Fatalf("%d error reports, want 5", len(res.errs))
	}
	wantOff := []int64{int64(len(ok1) + 1), int64(len(ok1) + len(long1) + len(ok2) + 3)}
	for i, e := range res.errs[:2] {
		if e.Reason != "too_long" || e.Offset != wantOff[i] || len(e.Raw) == 0 || len(e.Raw) > 4096 {
			t.Errorf("too_long report %d: reason %s offset %d (want %d) raw %d bytes", i, e.Reason, e.Offset, wantOff[i], len(e.Raw))
		}
		if !strings.Contains(e.Error(), "too_long") || !strings.Contains(e.Error(), fmt.Sprint(e.Offset)) {
			t.Errorf("error text %q names neither reason nor offset", e.Error())
		}
	}
	if !bytes.HasPrefix(res.errs[0].Raw, []byte("type=SYSCALL msg=audit(1.000:9)")) {
		t.Errorf("too_long raw does not start with the line: %q", res.errs[0].Raw[:40])
	}
	// Flagged lines are reported at the offset where they start, as
	// skipped ones are.
	if e := res.errs[2]; e.Reason != "nul_byte" || e.Offset != int64(strings.Index(in, nul)) {
		t.Errorf("report %s at %d, want nul_byte at %d", e.Reason, e.Offset, strings.Index(in, nul))
	}
	if e := res.errs[3]; e.Reason != "invalid_utf8" || e.Offset != int64(strings.Index(in, bad)) {
		t.Errorf("report %s at %d, want invalid_utf8 at %d", e.Reason, e.Offset, strings.Index(in, bad))
	}
	// The last line has no newline: the input ended inside it. It is
	// handed on (the parser decides) but flagged, at its start.
	if e := res.errs[4]; e.Reason != "no_newline" || e.Offset != int64(len(in)-len(ok3)) || string(e.Raw) != ok3 {
		t.Errorf("last report: %s at %d (want no_newline at %d), raw %q", e.Reason, e.Offset, len(in)-len(ok3), e.Raw)
	}
	if got := res.stats.Bytes.Value(); got != uint64(len(in)) {
		t.Errorf("bytes counter %d, want %d (skipped bytes count too)", got, len(in))
	}
}

// frame builds one dispatcher frame; fixed pads the data area to 8970 bytes.
func frame(ver, typ uint32, payload string, fixed bool) []byte {
	var h [16]byte
	binary.LittleEndian.PutUint32(h[0:], ver)
	binary.LittleEndian.PutUint32(h[4:], 16)
	binary.LittleEndian.PutUint32(h[8:], typ)
	binary.LittleEndian.PutUint32(h[12:], uint32(len(payload)))
	b := append(h[:], payload...)
	if fixed {
		b = append(b, make([]byte, maxAuditMessage-len(payload))...)
	}
	return b
}

// TestBinaryReportOffsets: a flagged frame is reported at the offset
// where its header starts, with fixed (padded) and exact frames.
func TestBinaryReportOffsets(t *testing.T) {
	for _, fixed := range []bool{false, true} {
		first := frame(1, 1300, "type=SYSCALL msg=audit(1.000:1): a=1", fixed)
		second := frame(1, 1300, "type=SYSCALL msg=audit(1.000:2): comm=\"\xff\"", fixed)
		in := append(append(append([]byte(nil), first...), second...), frame(1, 1300, "type=SYSCALL msg=audit(1.000:3): comm=\"a\x00\"", fixed)...)
		framing := FramingBinaryExact
		if fixed {
			framing = FramingBinaryFixed
		}
		res := readAll(t, bytes.NewReader(in), framing, 64<<10)
		if len(res.lines) != 3 || len(res.errs) != 2 {
			t.Fatalf("fixed %v: %d lines, %d reports; want 3 and 2", fixed, len(res.lines), len(res.errs))
		}
		for i, want := range []struct {
			reason string
			off    int
		}{{"invalid_utf8", len(first)}, {"nul_byte", len(first) + len(second)}} {
			if e := res.errs[i]; e.Reason != want.reason || e.Offset != int64(want.off) {
				t.Errorf("fixed %v: report %d: %s at %d, want %s at %d", fixed, i, e.Reason, e.Offset, want.reason, want.off)
			}
		}
	}
}

type binFrame struct {
	ver, typ uint32
	payload  string
	want     string
}

var binFrames = []binFrame{
	{0, 1300, "audit(1700000000.100:500): arch=c000003e syscall=59 success=yes exit=0 key=(null)",
		"type=SYSCALL msg=audit(1700000000.100:500): arch=c000003e syscall=59 success=yes exit=0 key=(null)"},
	{1, 1309, "type=EXECVE msg=audit(1700000000.100:500): argc=2 a0=\"ls\" a1=\"-l\"",
		"type=EXECVE msg=audit(1700000000.100:500): argc=2 a0=\"ls\" a1=\"-l\""},
	{1, 1300, "node=web1 type=SYSCALL msg=audit(1.000:7): arch=c000003e key=(null)\x1dARCH=x86_64 UID=\"root\"",
		"node=web1 type=SYSCALL msg=audit(1.000:7): arch=c000003e key=(null)\x1dARCH=x86_64 UID=\"root\""},
	{0, 1420, "audit(1731000000.000:42): ipe_op=EXECUTE", "type=UNKNOWN[1420] msg=audit(1731000000.000:42): ipe_op=EXECUTE"},
	// VER0 is printed with %.*s: the text ends at a NUL; newlines become spaces
	{0, 1327, "audit(1.000:8): proctitle=\"a\"\x00junk", "type=PROCTITLE msg=audit(1.000:8): proctitle=\"a\""},
	{1, 1320, "type=EOE msg=audit(1.000:8): a=1\nb=2\n", "type=EOE msg=audit(1.000:8): a=1 b=2"},
	{0, 1320, "audit(1.000:9): ", "type=EOE msg=audit(1.000:9): "},
}

func binStream(fixed bool) ([]byte, []string) {
	var in []byte
	var want []string
	for _, f := range binFrames {
		in = append(in, frame(f.ver, f.typ, f.payload, fixed)...)
		want = append(want, f.want)
	}
	return in, want
}

func TestBinaryFraming(t *testing.T) {
	for _, tc := range []struct {
		name, framing string
		fixed         bool
		settled       string
	}{
		{"fixed", FramingBinaryFixed, true, FramingBinaryFixed},
		{"exact", FramingBinaryExact, false, FramingBinaryExact},
		{"auto-fixed", FramingBinaryAuto, true, FramingBinaryFixed},
		{"auto-exact", FramingBinaryAuto, false, FramingBinaryExact},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, want := binStream(tc.fixed)
			for _, tr := range []bool{false, true} {
				var r io.Reader = bytes.NewReader(in)
				if tr {
					r = &trickle{r: r}
				}
				res := readAll(t, r, tc.framing, 64<<10)
				if res.err != nil {
					t.Fatal(res.err)
				}
				if strings.Join(res.lines, "\n") != strings.Join(want, "\n") {
					t.Fatalf("trickle=%v lines:\n%q\nwant\n%q", tr, res.lines, want)
				}
				if len(res.errs) != 0 {
					t.Errorf("trickle=%v: error %v %q", tr, res.errs[0], res.errs[0].Raw)
				}
				if res.reader.Framing() != tc.settled {
					t.Errorf("framing settled on %s, want %s", res.reader.Framing(), tc.settled)
				}
				if got := res.stats.Bytes.Value(); got != uint64(len(in)) {
					t.Errorf("bytes counter %d, want %d", got, len(in))
				}
			}
		})
	}
}

func TestBinaryTruncatedAndGarbage(t *testing.T) {
	a := frame(1, 1300, "type=SYSCALL msg=audit(1.000:1): a=1", false)
	b := frame(1, 1327, "type=PROCTITLE msg=audit(1.000:1): proctitle=\"x\"", false)
	garbage := []byte("\x00\x00garbage between frames \xff\xff\xff\xff\x10\x00\x00\x00")
	cases := []struct {
		name    string
		in      []byte
		framing string
		want    []string
		bad     uint64
	}{
		{"garbage between exact frames", append(append(append([]byte{}, a...), garbage...), b...), FramingBinaryExact,
			[]string{"type=SYSCALL msg=audit(1.000:1): a=1", "type=PROCTITLE msg=audit(1.000:1): proctitle=\"x\""}, 1},
		{"garbage before the first frame", append(append([]byte{}, garbage...), a...), FramingBinaryAuto,
			[]string{"type=SYSCALL msg=audit(1.000:1): a=1"}, 1},
		{"truncated payload at EOF", append(append([]byte{}, a...), b[:len(b)-5]...), FramingBinaryExact,
			[]string{"type=SYSCALL msg=audit(1.000:1): a=1"}, 1},
		{"truncated header at EOF", append(append([]byte{}, a...), b[:7]...), FramingBinaryExact,
			[]string{"type=SYSCALL msg=audit(1.000:1): a=1"}, 1},
		{"truncated fixed padding at EOF", frame(1, 1300, "type=SYSCALL msg=audit(1.000:1): a=1", true)[:100], FramingBinaryFixed,
			[]string{"type=SYSCALL msg=audit(1.000:1): a=1"}, 0},
		{"oversized size field", append(append(frame(1, 1300, "", false)[:12], 0xff, 0xff, 0, 0), a...), FramingBinaryExact,
			[]string{"type=SYSCALL msg=audit(1.000:1): a=1"}, 1},
		// Auto-detection is not misled by bytes after the first frame:
		// they are not a fixed frame's padding (a header follows them).
		{"garbage after the first frame, auto", append(append(append([]byte{}, a...), garbage...), b...), FramingBinaryAuto,
			[]string{"type=SYSCALL msg=audit(1.000:1): a=1", "type=PROCTITLE msg=audit(1.000:1): proctitle=\"x\""}, 1},
		{"truncated fixed padding at EOF, auto", frame(1, 1300, "type=SYSCALL msg=audit(1.000:1): a=1", true)[:100], FramingBinaryAuto,
			[]string{"type=SYSCALL msg=audit(1.000:1): a=1"}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			done := make(chan *readResult, 1)
			go func() { done <- readAll(t, &trickle{r: bytes.NewReader(c.in)}, c.framing, 64<<10) }()
			var res *readResult
			select {
			case res = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("reader did not finish")
			}
			if res.err != nil {
				t.Fatalf("error %v", res.err)
			}
			if strings.Join(res.lines, "\n") != strings.Join(c.want, "\n") {
				t.Errorf("lines %q, want %q", res.lines, c.want)
			}
			if got := res.count("bad_frame"); got != c.bad {
				t.Errorf("bad_frame counted %d, want %d", got, c.bad)
			}
			// Every byte read is counted, skipped ones too.
			if got := res.stats.Bytes.Value(); got != uint64(len(c.in)) {
				t.Errorf("bytes counted %d, read %d", got, len(c.in))
			}
			for _, e := range res.errs {
				if e.Reason != "bad_frame" || len(e.Raw) == 0 {
					t.Errorf("report %+v", e)
				}
			}
		})
	}
}

// TestStringFramingCRLF: CRLF line ends lose their \r, every one counted,
// reported once per stream, for the first such line at the offset where
// it starts; a \r elsewhere stays.
func TestStringFramingCRLF(t *testing.T) {
	a := "type=EOE msg=audit(1.000:1): "
	b := "type=SYSCALL msg=audit(1.000:2): comm=\"a\rb\" key=(null)"
	in := a + "\r\n" + b + "\r\n" + a + "\n"
	res := readAll(t, &trickle{r: strings.NewReader(in)}, FramingString, 1024)
	if res.err != nil {
		t.Fatal(res.err)
	}
	if want := []string{a, b, a}; strings.Join(res.lines, "|") != strings.Join(want, "|") {
		t.Fatalf("lines:\n%q\nwant\n%q", res.lines, want)
	}
	if got := res.count("crlf"); got != 2 || len(res.errs) != 1 || len(res.silent) != 1 {
		t.Fatalf("crlf counted %d, %d reports, %d silent; want 2, 1 and 1 (the second line's, counted only)", got, len(res.errs), len(res.silent))
	}
	if e := res.silent[0]; e.Reason != "crlf" || !e.Flagged || e.Line != 2 {
		t.Errorf("second crlf line reported as %+v, want flagged crlf of line 2", e)
	}
	if e := res.errs[0]; e.Reason != "crlf" || e.Offset != 0 {
		t.Errorf("report: %s at %d, want crlf at 0", e.Reason, e.Offset)
	}
	if got := res.stats.Bytes.Value(); got != uint64(len(in)) {
		t.Errorf("bytes counter %d, want %d", got, len(in))
	}
}

// TestFormatMismatch: a stream in the other plugins.d format than the
// framing stops the reader at once with a FormatMismatchError naming both
// formats, counted as format_mismatch, and hands out nothing; a stream in
// the right format is not taken for one.
func TestFormatMismatch(t *testing.T) {
	text := []byte(strings.Join(fixtureLines(t)[:5], "\n") + "\n")
	node := []byte("node=h1 type=SYSCALL msg=audit(1.000:1): a=1\n")
	bin, _ := binStream(false)
	fixed, _ := binStream(true)
	for _, c := range []struct {
		name, framing, stream string
		in                    []byte
	}{
		{"binary config, string stream", FramingBinaryAuto, "string", text},
		{"binary-fixed config, string stream with node=", FramingBinaryFixed, "string", node},
		{"binary-exact config, string stream", FramingBinaryExact, "string", text},
		{"string config, binary stream", FramingString, "binary", bin},
		{"string config, fixed binary stream", FramingString, "binary", fixed},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := readAll(t, &trickle{r: bytes.NewReader(c.in)}, c.framing, 64<<10)
			var fm *FormatMismatchError
			if !errors.As(res.err, &fm) {
				t.Fatalf("err %v, want a FormatMismatchError", res.err)
			}
			if fm.Framing != c.framing || fm.Stream != c.stream {
				t.Errorf("mismatch %+v, want framing %s stream %s", fm, c.framing, c.stream)
			}
			msg := res.err.Error()
			if !strings.Contains(msg, `format is "`+c.framing+`"`) || !strings.Contains(msg, "format = "+c.stream) {
				t.Errorf("message %q does not name both formats", msg)
			}
			if got := res.count("format_mismatch"); got != 1 {
				t.Errorf("format_mismatch counted %d, want 1", got)
			}
			if len(res.lines) != 0 || res.stats.Lines.Value() != 0 {
				t.Errorf("lines handed out: %q", res.lines)
			}
		})
	}
	for _, c := range []struct {
		framing string
		in      []byte
	}{{FramingString, text}, {FramingString, node}, {FramingBinaryAuto, bin}, {FramingBinaryFixed, fixed}, {FramingString, []byte("type=X\n")}} {
		if res := readAll(t, bytes.NewReader(c.in), c.framing, 64<<10); res.err != nil || res.count("format_mismatch") != 0 {
			t.Errorf("%s over %.20q: err %v, format_mismatch %d", c.framing, c.in, res.err, res.count("format_mismatch"))
		}
	}
}

// FuzzFraming: binary framing over arbitrary bytes never panics, always
// ends (a format mismatch is an error, any other is not), and hands out
// lines without newlines; the string framing too, and there every line
// read is handed out or reported rejected (flagged ones are handed out).
func FuzzFraming(f *testing.F) {
	in, _ := binStream(false)
	f.Add(in)
	fixed, _ := binStream(true)
	f.Add(fixed[:9100])
	f.Add(append([]byte("garbage"), in...))
	f.Add(frame(0, 1300, "audit(1.000:1): a", false)[:20])
	f.Add([]byte("type=EOE msg=audit(1.000:1): \n\x00\x00node=h type=EOE\n\n\x00\x00\r\ntype=X\x00y"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, framing := range []string{FramingBinaryAuto, FramingBinaryExact, FramingBinaryFixed, FramingString} {
			done := make(chan *readResult, 1)
			go func() { done <- readAll(t, bytes.NewReader(data), framing, 1024) }()
			var res *readResult
			select {
			case res = <-done:
			case <-time.After(5 * time.Second):
				t.Fatalf("%s: reader did not finish on %d bytes", framing, len(data))
			}
			var fm *FormatMismatchError
			if res.err != nil && !errors.As(res.err, &fm) {
				t.Fatalf("%s: %v", framing, res.err)
			}
			total := 0
			for _, l := range res.lines {
				if strings.IndexByte(l, '\n') >= 0 || l == "" {
					t.Fatalf("%s: bad line %q", framing, l)
				}
				total += len(l)
			}
			if framing != FramingBinaryAuto && framing != FramingBinaryFixed && framing != FramingBinaryExact && total > len(data) {
				t.Fatalf("%s: %d bytes of lines from %d bytes", framing, total, len(data))
			}
			if framing == FramingString && res.err == nil {
				rejected := 0
				for _, e := range append(res.errs, res.silent...) {
					if !e.Flagged {
						rejected++
					}
				}
				if res.reader.line != int64(len(res.lines)+rejected) {
					t.Fatalf("%d lines read, %d handed out, %d rejected", res.reader.line, len(res.lines), rejected)
				}
			}
		}
	})
}

// TestBinaryAutoFullFirstFrame: with auditd <= 4.1.0 a first record of
// exactly 8970 bytes has no padding, so it looks like an exact frame; the
// reader must still read the padded frames that follow without errors.
func TestBinaryAutoFullFirstFrame(t *testing.T) {
	head := "type=EXECVE msg=audit(1.000:1): argc=1 a0="
	full := head + strings.Repeat("41", (maxAuditMessage-len(head))/2)
	full += strings.Repeat("B", maxAuditMessage-len(full))
	in := frame(1, 1309, full, true)
	in = append(in, frame(1, 1327, "type=PROCTITLE msg=audit(1.000:1): proctitle=\"x\"", true)...)
	in = append(in, frame(1, 1320, "type=EOE msg=audit(1.000:1): ", true)...)
	res := readAll(t, bytes.NewReader(in), FramingBinaryAuto, 64<<10)
	if len(res.lines) != 3 || res.count("bad_frame") != 0 {
		t.Errorf("%d lines, %d bad frames (framing settled on %s); want 3 lines and no errors", len(res.lines), res.count("bad_frame"), res.reader.Framing())
	}
}

// TestBinaryAutoFirstFrameNotHeld: in format = binary the first record is
// handed out as soon as its frame is in, with either layout; detection
// does not wait for the next record (on a quiet system it may come much
// later, or never before the plugin stops).
func TestBinaryAutoFirstFrameNotHeld(t *testing.T) {
	for _, fixed := range []bool{true, false} {
		pr, pw := io.Pipe()
		stats := NewInputStats(&metrics.Registry{})
		rd, err := NewReader(pr, FramingBinaryAuto, 64<<10, stats, func(e *InputError) { t.Errorf("fixed=%v: report %v", fixed, e) })
		if err != nil {
			t.Fatal(err)
		}
		out := make(chan Batch, 4)
		done := make(chan error, 1)
		go func() { done <- rd.Run(out) }()
		first := frame(0, 1300, "audit(1.000:1): arch=c000003e syscall=59", fixed)
		go func() { _, _ = pw.Write(first) }()
		var got []string
		select {
		case b := <-out:
			got = b.Lines
		case <-time.After(3 * time.Second):
			t.Fatalf("fixed=%v: first frame not handed out after 3s (framing %s)", fixed, rd.Framing())
		}
		second := frame(1, 1320, "type=EOE msg=audit(1.000:1): ", fixed)
		go func() { _, _ = pw.Write(second); pw.Close() }()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		for len(out) > 0 {
			got = append(got, (<-out).Lines...)
		}
		want := []string{"type=SYSCALL msg=audit(1.000:1): arch=c000003e syscall=59", "type=EOE msg=audit(1.000:1): "}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("fixed=%v: lines %q, want %q", fixed, got, want)
		}
		settled := map[bool]string{true: FramingBinaryFixed, false: FramingBinaryExact}[fixed]
		if rd.Framing() != settled || stats.Bytes.Value() != uint64(len(first)+len(second)) {
			t.Errorf("fixed=%v: settled on %s, %d bytes counted; want %s, %d", fixed, rd.Framing(), stats.Bytes.Value(), settled, len(first)+len(second))
		}
	}
}

// TestRunNeverBlocks: in plugin mode a full queue drops the batch and
// counts it; the reader keeps reading auditd's stream.
func TestRunNeverBlocks(t *testing.T) {
	lines := fixtureLines(t)
	in := strings.Join(lines, "\n") + "\n"
	stats := NewInputStats(&metrics.Registry{})
	var reports []*InputError
	rd, err := NewReader(strings.NewReader(in), FramingString, 64<<10, stats, func(e *InputError) { reports = append(reports, e) })
	if err != nil {
		t.Fatal(err)
	}
	full := make(chan Batch) // nobody receives
	done := make(chan error, 1)
	go func() { done <- rd.Run(full) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run blocked on a full queue")
	}
	if got := stats.Dropped.Value(); got != uint64(len(lines)) {
		t.Errorf("dropped %d, want %d", got, len(lines))
	}
	if len(reports) == 0 || reports[0].Reason != "queue_full" || !bytes.Contains(reports[0].Raw, []byte("dropped")) {
		t.Errorf("reports %v", reports)
	}
	// Each drop names the lines it lost: the batches follow each other.
	next := int64(1)
	for _, e := range reports {
		var n, from, to int64
		if _, err := fmt.Sscanf(string(e.Raw), "pipeline queue full: dropped %d records (lines %d to %d)", &n, &from, &to); err != nil ||
			e.Line != next || from != next || to != from+n-1 {
			t.Fatalf("queue_full report %q at line %d, want the lines from %d (err %v)", e.Raw, e.Line, next, err)
		}
		next = to + 1
	}
	if next != int64(len(lines))+1 {
		t.Errorf("the drops name lines 1 to %d, want 1 to %d", next-1, len(lines))
	}
	// With room, Run delivers and tracks the queue depth.
	stats = NewInputStats(&metrics.Registry{})
	rd, _ = NewReader(strings.NewReader(in), FramingString, 64<<10, stats, func(e *InputError) { t.Errorf("report %v", e) })
	roomy := make(chan Batch, 1024)
	if err := rd.Run(roomy); err != nil {
		t.Fatal(err)
	}
	n := 0
	for len(roomy) > 0 {
		n += len((<-roomy).Lines)
	}
	if n != len(lines) || stats.Dropped.Value() != 0 || stats.QueueLen.Value() != int64(n) || stats.QueueHigh.Value() < int64(n) {
		t.Errorf("delivered %d of %d, dropped %d, queue %d high %d", n, len(lines), stats.Dropped.Value(), stats.QueueLen.Value(), stats.QueueHigh.Value())
	}
}

// The wait after a short read is the configured delay while data trickles
// in, and shorter when the rate would fill half the pipe sooner.
func TestCoalesceWait(t *testing.T) {
	ms := time.Millisecond
	for _, c := range []struct {
		n    int
		dt   time.Duration
		want time.Duration
	}{
		{0, 100 * ms, 0},             // nothing read (EOF)
		{defaultPipeHalf, ms, 0},     // a long read: read on at once
		{1 << 10, 100 * ms, 20 * ms}, // a trickle: the full delay
		{16 << 10, ms, 2 * ms},       // 16 KiB in 1 ms: 32 KiB in 2 ms
		{8 << 10, 10 * ms, 20 * ms},  // 32 KiB would take 40 ms
		{31 << 10, 31 * ms, 20 * ms}, // 1 KiB/ms: 32 ms, capped
		{4 << 10, 500 * time.Microsecond, 4 * ms},
	} {
		if got := coalesceWait(20*ms, c.n, c.dt, defaultPipeHalf); got != c.want {
			t.Errorf("coalesceWait(20ms, %d, %s) = %s, want %s", c.n, c.dt, got, c.want)
		}
	}
	// A 1 MiB pipe: 16 KiB in 1 ms would take 32 ms to fill half of it.
	if got := coalesceWait(50*ms, 16<<10, ms, 512<<10); got != 32*ms {
		t.Errorf("1 MiB pipe: %s, want 32ms", got)
	}
}

// A read that fills the buffer it was given is followed at once, however
// short: more is waiting in the pipe, and the reader must not fall behind
// a writer that outruns one buffer per delay.
func TestCoalescingReaderFullBuffer(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	data := bytes.Repeat([]byte("x"), 10_000)
	if _, err := pw.Write(data); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	cr := NewCoalescingReader(pr, time.Second)
	// A slow start: 1000 bytes over 100 ms would otherwise mean the full
	// one-second delay after each read.
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	buf := make([]byte, 1000)
	got := 0
	for {
		n, err := cr.Read(buf)
		got += n
		if err != nil {
			break
		}
	}
	if got != len(data) {
		t.Fatalf("read %d of %d bytes", got, len(data))
	}
	// Ten full reads, then EOF after one short one: no delay at all.
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("reading a full pipe in small buffers took %s: the reader waited after full reads", d)
	}
}

// A trickle through a coalescing reader arrives whole, in far fewer reads
// than writes.
func TestCoalescingReaderTrickle(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	const writes = 60
	took := make(chan time.Duration, 1) // how long the writes took (a loaded machine stretches the sleeps)
	go func() {
		start := time.Now()
		for i := 0; i < writes; i++ {
			fmt.Fprintf(pw, "type=SYSCALL msg=audit(1.000:%d): x=%d\n", i, i)
			time.Sleep(time.Millisecond)
		}
		took <- time.Since(start)
		pw.Close()
	}()
	cr := &countingReader{r: pr}
	data, err := io.ReadAll(NewCoalescingReader(cr, 20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(data, []byte("\n")); n != writes {
		t.Fatalf("%d lines arrived, want %d", n, writes)
	}
	// The writes in 20 ms steps: a read or two per step (60 ms of writes
	// on an idle machine: about ten), not one per write; a loaded
	// machine stretches the writes over more steps.
	wrote := <-took
	if most := min(max(writes/4, int(wrote/(10*time.Millisecond))+3), writes/2); cr.reads > most {
		t.Errorf("%d reads for %d writes over %v, want at most %d", cr.reads, writes, wrote, most)
	}
}

type countingReader struct {
	r     io.Reader
	reads int
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.reads++
	return c.r.Read(p)
}

// TestReaderLastLineTooLong: a last line without newline is held to the
// same limit as the others (it was flagged no_newline and parsed
// whatever its length, up to the read buffer's size); one of exactly
// the limit is still handed out.
func TestReaderLastLineTooLong(t *testing.T) {
	const limit = 1024
	head := "type=SYSCALL msg=audit(1.000:9): a0="
	for _, c := range []struct {
		size   int
		reason string
	}{{limit + 1, "too_long"}, {5000, "too_long"}, {limit, "no_newline"}} {
		last := head + strings.Repeat("x", c.size-len(head))
		ok := "type=EOE msg=audit(1.000:8):"
		res := readAll(t, strings.NewReader(ok+"\n"+last), FramingString, limit)
		if res.err != nil {
			t.Fatal(res.err)
		}
		want := []string{ok}
		if c.reason == "no_newline" {
			want = append(want, last)
		}
		if strings.Join(res.lines, "|") != strings.Join(want, "|") {
			t.Errorf("last line of %d bytes: handed out %d lines, want %d", c.size, len(res.lines), len(want))
		}
		if len(res.errs) != 1 || res.errs[0].Reason != c.reason || res.errs[0].Line != 2 || res.errs[0].Offset != int64(len(ok)+1) {
			t.Errorf("last line of %d bytes: reports %v, want one %s at line 2, offset %d", c.size, res.errs, c.reason, len(ok)+1)
		}
	}
}

// TestStringFramingNULs: a line holding NUL bytes (what a power loss
// leaves in audit.log) hands on its last record that begins the line or
// follows a NUL, flagged nul_byte once with the bytes skipped before it;
// a line without one is rejected as nul_byte, once, and handed on never.
func TestStringFramingNULs(t *testing.T) {
	rec := "node=web type=DAEMON_START msg=audit(1682690151.869:4366): op=start"
	for _, c := range []struct {
		name, line, want string // want "": rejected
		detail           string
	}{
		{"NULs then a record", strings.Repeat("\x00", 3000) + rec, rec, "skipped 3000 bytes (3000 of them NUL)"},
		{"a record cut by NULs, then one", "type=SYSCALL msg=audit(1.000:1): sysc\x00\x00" + rec, rec, "skipped 39 bytes (2 of them NUL)"},
		{"the last of two", "\x00type=EOE msg=audit(1.000:1): \x00" + rec, rec, "skipped 31 bytes (2 of them NUL)"},
		{"a NUL inside a value", `type=SYSCALL msg=audit(1.000:1): comm="a` + "\x00" + `b"`, `type=SYSCALL msg=audit(1.000:1): comm="a` + "\x00" + `b"`, "NUL bytes inside the record"},
		{"NULs only", strings.Repeat("\x00", 100), "", "no record in the line"},
		{"no record after the NULs", "garbage\x00\x00more type=X", "", "no record in the line"},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := "type=EOE msg=audit(1.000:9): \n" + c.line + "\ntype=EOE msg=audit(1.000:10): \n"
			res := readAll(t, &trickle{r: strings.NewReader(in)}, FramingString, 8192)
			if res.err != nil {
				t.Fatal(res.err)
			}
			want := []string{"type=EOE msg=audit(1.000:9): "}
			nums := []int64{1, 3}
			if c.want != "" {
				want = append(want, c.want)
				nums = []int64{1, 2, 3}
			}
			want = append(want, "type=EOE msg=audit(1.000:10): ")
			if !slices.Equal(res.lines, want) || !slices.Equal(res.numbers, nums) {
				t.Fatalf("lines %q numbered %v, want %q numbered %v", res.lines, res.numbers, want, nums)
			}
			if len(res.errs) != 1 || res.count("nul_byte") != 1 {
				t.Fatalf("%d reports, nul_byte counted %d; want 1 and 1", len(res.errs), res.count("nul_byte"))
			}
			e := res.errs[0]
			if e.Reason != "nul_byte" || e.Line != 2 || e.Offset != int64(strings.Index(in, c.line)) ||
				e.Flagged != (c.want != "") || !strings.Contains(e.Error(), c.detail) {
				t.Errorf("report %+v (%s), want nul_byte of line 2 at %d, flagged %v, saying %q", e, e.Error(), strings.Index(in, c.line), c.want != "", c.detail)
			}
		})
	}
}

// TestStringFramingEmpty: an empty line is not handed on, but counted as
// empty and reported to be counted only (Silent), with its number; the
// end of the input is no empty line.
func TestStringFramingEmpty(t *testing.T) {
	in := "\ntype=EOE msg=audit(1.000:1): \n\n\r\ntype=EOE msg=audit(1.000:2): \n"
	res := readAll(t, strings.NewReader(in), FramingString, 1024)
	if len(res.lines) != 2 || res.count("empty") != 3 {
		t.Fatalf("%d lines, empty counted %d; want 2 and 3", len(res.lines), res.count("empty"))
	}
	var lines []int64
	for _, e := range res.silent {
		if e.Reason == "empty" {
			lines = append(lines, e.Line)
		}
	}
	if !slices.Equal(lines, []int64{1, 3, 4}) {
		t.Errorf("empty lines reported at %v, want 1 3 4", lines)
	}
	for _, e := range res.errs {
		if e.Reason == "empty" {
			t.Errorf("an empty line reported to be logged: %+v", e)
		}
	}
}
