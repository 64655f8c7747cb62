package audit

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

type digestCase struct {
	algo, value string
}

// readDigestCases reads testdata/digests.txt: "<algo or -> <value>" lines.
func readDigestCases(t testing.TB) []digestCase {
	t.Helper()
	f, err := os.Open("testdata/digests.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cs []digestCase
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		algo, value, ok := strings.Cut(line, " ")
		if !ok {
			t.Fatalf("testdata/digests.txt:%d: want \"<algo> <value>\"", n)
		}
		cs = append(cs, digestCase{algo, value})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(cs) < 10 {
		t.Fatalf("only %d cases in testdata/digests.txt", len(cs))
	}
	return cs
}

func TestParseDigestFile(t *testing.T) {
	for _, c := range readDigestCases(t) {
		algo, hex, ok := ParseDigest(c.value)
		if c.algo == "-" {
			if ok || algo != "" || hex != "" {
				t.Errorf("ParseDigest(%q) = %q, %q, %v; want invalid", c.value, algo, hex, ok)
			}
			continue
		}
		want := strings.ToLower(c.value[strings.IndexByte(c.value, ':')+1:])
		if !ok || algo != c.algo || hex != want {
			t.Errorf("ParseDigest(%q) = %q, %q, %v; want %q, %q", c.value, algo, hex, ok, c.algo, want)
		}
	}
}

func TestParseDigestForms(t *testing.T) {
	const h = "654897e5d6ff41bffac650f7f545975757380ae0bf1bb5459c0dc054cb342084"
	tests := []struct {
		in        string
		algo, hex string
		ok        bool
	}{
		{"sha256:" + h, "sha256", h, true},
		{"SHA256:" + strings.ToUpper(h), "sha256", h, true},
		{"sHa256:" + h, "sha256", h, true},
		{"MD5:" + h[:32], "md5", h[:32], true},
		{strings.ToUpper(h[:40]), "sha1", h[:40], true},
		{"sha384:" + h + h[:32], "sha384", h + h[:32], true},
		{"sha256:" + h[:62], "", "", false}, // the kernel never writes 62 digits
		{"sha256:" + h + "00", "", "", false},
		{"sha256:" + h[:63] + "Z", "", "", false},
		{"sha256:" + h[:63] + "\x16", "", "", false}, // 0x16|0x20 is '6': not a digit
		{"sha25\x16:" + h, "", "", false},
		{"sha256:sha256:" + h[:57], "", "", false},
		{" sha256:" + h, "", "", false}, // white space is not part of a digest
		{"sha256:" + h + " ", "", "", false},
		{h[:56], "", "", false},     // bare 56 hex: not a legacy form
		{h + h[:32], "", "", false}, // bare 96 hex: not a legacy form
		{"sha512256:" + h, "", "", false},
		{":" + h, "", "", false},
		{"", "", "", false},
	}
	for _, tt := range tests {
		algo, hex, ok := ParseDigest(tt.in)
		if algo != tt.algo || hex != tt.hex || ok != tt.ok {
			t.Errorf("ParseDigest(%q) = %q, %q, %v; want %q, %q, %v", tt.in, algo, hex, ok, tt.algo, tt.hex, tt.ok)
		}
		a, b, okb := SplitDigest([]byte(tt.in))
		if okb != ok || ok && (a.String() != algo || strings.ToLower(string(b)) != hex) {
			t.Errorf("SplitDigest([]byte(%q)) = %v, %q, %v; the string form gives %q, %q, %v", tt.in, a, b, okb, algo, hex, ok)
		}
	}
}

// TestSummaryFileHash: the summary reads hash= with ParseDigest, so the
// spellings it accepts normalise to lower case and a malformed value
// (62 digits) stays out of file.hash.
func TestSummaryFileHash(t *testing.T) {
	const h = "654897e5d6ff41bffac650f7f545975757380ae0bf1bb5459c0dc054cb342084"
	for _, tt := range []struct{ value, sha256 string }{
		{"sha256:" + h, h},
		{"SHA256:" + strings.ToUpper(h), h},
		{h, h},
		{"sha256:" + h[:62], ""},
	} {
		in := "type=INTEGRITY_RULE msg=audit(1.000:1): file=\"/x\" hash=\"" + tt.value + "\" pid=1\n"
		var p Parser
		r, err := p.Parse(strings.TrimSuffix(in, "\n"))
		if err != nil {
			t.Fatal(err)
		}
		var s Summary
		Summarize(&Event{Records: []*Record{r}}, &s)
		if s.Hashes[0] != tt.sha256 || s.FilePath != "/x" {
			t.Errorf("hash=%q: file.hash.sha256 %q path %q; want %q", tt.value, s.Hashes[0], s.FilePath, tt.sha256)
		}
	}
}

func FuzzParseDigest(f *testing.F) {
	for _, c := range readDigestCases(f) {
		f.Add(c.value)
	}
	f.Fuzz(func(t *testing.T, v string) {
		algo, hex, ok := ParseDigest(v)
		a, raw, okb := SplitDigest([]byte(v))
		if okb != ok {
			t.Fatalf("%q: string form ok=%v, []byte form ok=%v", v, ok, okb)
		}
		if !ok {
			if algo != "" || hex != "" || a != NoDigest || raw != nil {
				t.Fatalf("not ok but returned %q %q / %v %q", algo, hex, a, raw)
			}
			return
		}
		if a.String() != algo || 2*a.Size() != len(hex) || strings.ToLower(string(raw)) != hex {
			t.Fatalf("%q: %s/%q vs %v/%q", v, algo, hex, a, raw)
		}
		for i := 0; i < len(hex); i++ {
			if c := hex[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				t.Fatalf("%q: digest %q is not lower-case hex", v, hex)
			}
		}
		if !strings.HasSuffix(strings.ToLower(v), hex) {
			t.Fatalf("%q: digest %q not taken from the end of the input", v, hex)
		}
		// Case does not matter, and the canonical form parses back to itself.
		for _, w := range []string{strings.ToUpper(v), algo + ":" + hex} {
			a2, h2, ok2 := ParseDigest(w)
			if !ok2 || a2 != algo || h2 != hex {
				t.Fatalf("%q: %q parses as %q %q %v, want %s:%s", v, w, a2, h2, ok2, algo, hex)
			}
		}
	})
}
