package syslog

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/audisp-enrich/audisp-enrich/sinks"
)

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 890123000, time.UTC)

func opts(format, framing string, max int) *Options {
	return &Options{Format: format, Framing: framing, Facility: 10, Severity: -1,
		AppName: "audisp-enrich", Hostname: "h1", ProcID: "42", MaxBytes: max}
}

func TestEncodeGolden(t *testing.T) {
	meta := sinks.Meta{Node: "n1", Types: []string{"SYSCALL", "PATH"}, Keys: []string{"exec"}, Techniques: []string{"T1059"}, Severity: 2, Kind: "event"}
	cases := []struct {
		o    *Options
		msg  string
		want string
	}{
		{opts(FormatRFC5424, FramingOctetCounting, 2048), `{"a":1}`,
			`154 <84>1 2026-03-04T05:06:07.890123Z h1 audisp-enrich 42 event [audisp@32473 node="n1" severity="2" type="SYSCALL,PATH" key="exec" technique="T1059"] {"a":1}`},
		{opts(FormatRFC5424, FramingLF, 2048), "x\ny",
			`<84>1 2026-03-04T05:06:07.890123Z h1 audisp-enrich 42 event [audisp@32473 node="n1" severity="2" type="SYSCALL,PATH" key="exec" technique="T1059"] x\u000Ay` + "\n"},
		{opts(FormatRFC5424, FramingNone, 2048), "",
			`<84>1 2026-03-04T05:06:07.890123Z h1 audisp-enrich 42 event [audisp@32473 node="n1" severity="2" type="SYSCALL,PATH" key="exec" technique="T1059"]`},
		{opts(FormatRFC3164, FramingLF, 2048), "m\x00\t\x1d",
			"<84>Mar  4 05:06:07 h1 audisp-enrich[42]: m\\u0000\t\\u001D\n"},
		{opts(FormatRFC5424, FramingOctetCounting, 2048), "a\nb\x00\x1d",
			`157 <84>1 2026-03-04T05:06:07.890123Z h1 audisp-enrich 42 event [audisp@32473 node="n1" severity="2" type="SYSCALL,PATH" key="exec" technique="T1059"] a` + "\nb\\u0000\x1d"},
	}
	for i, c := range cases {
		got, trunc := Encode(nil, c.o, &Record{Time: t0, Meta: meta, Msg: []byte(c.msg)})
		if string(got) != c.want || trunc {
			t.Errorf("case %d:\n got %q (truncated %v)\nwant %q", i, got, trunc, c.want)
		}
	}
}

func TestEncodeFixedSeverityAndNil(t *testing.T) {
	o := opts(FormatRFC5424, FramingNone, 2048)
	o.Severity, o.Facility, o.ProcID = 7, 16, ""
	got, _ := Encode(nil, o, &Record{Msg: []byte("m")})
	if want := `<135>1 - h1 audisp-enrich - - [audisp@32473 severity="0"] m`; string(got) != want {
		t.Errorf("got %q want %q", got, want)
	}
}

func TestEncodeParamEscaping(t *testing.T) {
	meta := sinks.Meta{Node: "a\"b\\c]d", Keys: []string{"\xff\n"}, Severity: -1}
	got, _ := Encode(nil, opts(FormatRFC5424, FramingNone, 2048), &Record{Meta: meta})
	want := `[audisp@32473 node="a\"b\\c\]d" severity="-1" key="` + "\uFFFD" + `\u000A"]`
	if !strings.HasSuffix(string(got), want) {
		t.Errorf("got %q\nwant suffix %q", got, want)
	}
}

func TestEncodeTruncation(t *testing.T) {
	msg := []byte(strings.Repeat("€", 2000)) // 3-byte runes
	for _, f := range []string{FormatRFC5424, FormatRFC3164} {
		for _, max := range []int{480, 481, 482, 1000, 4096} {
			o := opts(f, FramingNone, max)
			got, trunc := Encode(nil, o, &Record{Time: t0, Meta: sinks.Meta{Keys: []string{strings.Repeat("k", 300)}}, Msg: msg})
			if !trunc || len(got) > max || len(got) < max-3 || !utf8.Valid(got) {
				t.Errorf("%s max %d: len %d truncated %v valid %v", f, max, len(got), trunc, utf8.Valid(got))
			}
			mark := truncMark3164
			if f == FormatRFC5424 {
				mark = `truncated="true" orig_bytes="6000"]`
			}
			if !bytes.Contains(got, []byte(mark)) {
				t.Errorf("%s max %d: no truncation mark in %q", f, max, got)
			}
		}
	}
	// An escape sequence is never cut in half.
	o := opts(FormatRFC5424, FramingLF, 480)
	got, _ := Encode(nil, o, &Record{Time: t0, Msg: bytes.Repeat([]byte{1}, 1000)})
	body := strings.TrimSuffix(string(got), "\n")
	if i := strings.LastIndex(body, "] "); i < 0 || len(body[i+2:])%6 != 0 {
		t.Errorf("escape cut: %q", body)
	}
}

// FuzzEncode checks the guarantees of Encode for arbitrary messages and
// metadata under every format and framing.
func FuzzEncode(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/seed_*")
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, "node\n1", "key]\"", 3, uint16(600))
	}
	f.Add([]byte(strings.Repeat("é", 900)), "", "", 0, uint16(480))
	f.Fuzz(func(t *testing.T, msg []byte, node, key string, sev int, max uint16) {
		maxBytes := MinMessageBytes + int(max)%8000
		meta := sinks.Meta{Node: node, Keys: []string{key, node}, Types: []string{key}, Severity: sev, Kind: key}
		for _, format := range []string{FormatRFC5424, FormatRFC3164} {
			for _, framing := range []string{FramingOctetCounting, FramingLF, FramingNone} {
				o := opts(format, framing, maxBytes)
				o.Hostname = strings.Repeat("h", 255)
				out, _ := Encode(nil, o, &Record{Time: t0, Meta: meta, Msg: msg})
				body := checkFrame(t, framing, out)
				if len(body) > maxBytes {
					t.Fatalf("%s/%s: message %d bytes > max %d", format, framing, len(body), maxBytes)
				}
				if bytes.IndexByte(body, 0) >= 0 {
					t.Fatalf("%s/%s: NUL in output", format, framing)
				}
				strict := format == FormatRFC3164 || framing != FramingOctetCounting
				for _, c := range body {
					if strict && (c < 0x20 && c != '\t' || c == 0x7f) {
						t.Fatalf("%s/%s: control byte %#x in %q", format, framing, c, body)
					}
				}
				if format == FormatRFC5424 {
					checkSD(t, body)
				}
				if utf8.Valid(msg) && !utf8.Valid(body) {
					t.Fatalf("%s/%s: valid UTF-8 message became invalid: %q", format, framing, body)
				}
			}
		}
	})
}

// checkFrame asserts out is exactly one frame and returns the message.
func checkFrame(t *testing.T, framing string, out []byte) []byte {
	switch framing {
	case FramingOctetCounting:
		sp := bytes.IndexByte(out, ' ')
		n, err := strconv.Atoi(string(out[:max(sp, 0)]))
		if sp <= 0 || err != nil || n != len(out)-sp-1 || out[0] == '0' {
			t.Fatalf("bad octet-counted frame %q", out)
		}
		return out[sp+1:]
	case FramingLF:
		if bytes.IndexByte(out, '\n') != len(out)-1 {
			t.Fatalf("LF frame has %d newlines: %q", bytes.Count(out, []byte("\n")), out)
		}
		return out[:len(out)-1]
	default:
		return out
	}
}

// checkSD parses the header and SD-ELEMENT of an RFC 5424 message.
func checkSD(t *testing.T, m []byte) {
	s := string(m)
	for i := 0; i < 6; i++ { // PRI+VERSION TIMESTAMP HOSTNAME APP-NAME PROCID MSGID
		sp := strings.IndexByte(s, ' ')
		if sp <= 0 {
			t.Fatalf("short header: %q", m)
		}
		for _, c := range []byte(s[:sp]) {
			if c < 33 || c > 126 {
				t.Fatalf("header field %q has byte %#x", s[:sp], c)
			}
		}
		s = s[sp+1:]
	}
	if !strings.HasPrefix(s, "["+SDID) {
		t.Fatalf("no SD element: %q", s)
	}
	s = s[len(SDID)+1:]
	for s[0] == ' ' {
		eq := strings.Index(s, `="`)
		if eq < 0 {
			t.Fatalf("bad param: %q", s)
		}
		s = s[eq+2:]
		i := 0
		for ; i < len(s) && s[i] != '"'; i++ {
			if s[i] == '\\' {
				i++
				if i == len(s) || !strings.ContainsRune(`"\]u`, rune(s[i])) {
					t.Fatalf("bad escape in %q", s)
				}
			} else if s[i] == ']' {
				t.Fatalf("unescaped ] in value: %q", s)
			}
		}
		if i == len(s) || !utf8.ValidString(s[:i]) {
			t.Fatalf("unterminated or invalid value: %q", s)
		}
		s = s[i+1:]
	}
	if s[0] != ']' || (len(s) > 1 && s[1] != ' ') {
		t.Fatalf("SD element not closed: %q", s)
	}
}

func BenchmarkEncode(b *testing.B) {
	msg := bytes.Repeat([]byte(`{"type":"SYSCALL","key":"exec","comm":"ls"},`), 40) // ~1.8 KB of JSON
	meta := sinks.Meta{Node: "web1", Types: []string{"SYSCALL", "EXECVE", "PATH"}, Keys: []string{"exec"}, Severity: 2, Kind: "event"}
	for _, framing := range []string{FramingOctetCounting, FramingLF} {
		b.Run(framing, func(b *testing.B) {
			o := opts(FormatRFC5424, framing, 8192)
			var buf []byte
			b.SetBytes(int64(len(msg)))
			for i := 0; i < b.N; i++ {
				buf, _ = Encode(buf[:0], o, &Record{Time: t0, Meta: meta, Msg: msg})
			}
		})
	}
}
