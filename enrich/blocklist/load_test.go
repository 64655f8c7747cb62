package blocklist

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const (
	eicarSHA256 = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
	eicarMD5    = "44d88612fea8a8f36de82e1278abb02f"
	eicarSHA1   = "3395856ce81f2b7382dee72602f798b642f14140"
	aMD5        = "0cc175b9c0f1b6a831c399e269772661"
	aSHA1       = "86f7e437faa5a7fce15d1ddcb9eaeaea377667b8"
	aSHA256     = "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"
	aSHA512     = "1f40fc92da241694750979ee6cf582f2d5d7d28e18335de05abc54d0560e0f5302860c652bf08d560252aa5e74210546f369fbbbce8c12cfc7957b2652fe9a75"
	bMD5        = "92eb5ffee6ae2fec3ad71c777531578f"
	bSHA1       = "e9d71f5ee7c92d6dc9e92ffdad17b8bd49418f98"
	bSHA256     = "3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d"
	cSHA256     = "2e7d2c03a9507ae265ecf5b5356885a53393a2029d241394997265a1a25aefc6"
	dSHA256     = "18ac3e7343f016890c510e93f935261169d9e3f565436429830faf0934f4f8e4"
	eMD5        = "e1671797c52e15f763380b45e841ec32"
	eSHA1       = "58e6b3a414a1e090dfc6029add0f3555ccba127f"
	eSHA256     = "3f79bb7b435b05321651daefd374cdc681dc06faa65e374e38337b88ca046dea"
	fMD5        = "8fa14cdd754f91cc6554c9e71929cce7"
	fSHA1       = "4a0a19218e082a343a1b17e5333409af9d98f0f5"
	fSHA256     = "252f10c83610ebca1a059c0bae8255eba2f95be4d1d7bcfa89d7248a82d9f111"
	gSHA256     = "cd0aa9856147b6c5b4ff2b7dfee5da20aa38253099ef1b4a64aced233c9afe29"
)

// lookupHex looks a hex digest (any case, optionally algo-prefixed) up in ix.
func lookupHex(t testing.TB, ix *index, hex string) (string, bool) {
	t.Helper()
	var d digest
	if !parseDigest(hex, &d) {
		t.Fatalf("bad test digest %q", hex)
	}
	return ix.lookup(&d)
}

func TestFormats(t *testing.T) {
	tests := []struct {
		file   string
		lc     ListConfig
		counts [numAlgos]int // md5, sha1, sha256, sha512
		want   map[string]string
		absent []string
	}{
		{
			file:   "plain.txt",
			counts: [numAlgos]int{2, 2, 3, 1},
			want: map[string]string{
				eicarSHA256: "EICAR test file", // the duplicate line's label loses
				eicarMD5:    "EICAR (md5, upper case, tab)",
				eicarSHA1:   "",
				aSHA256:     "dropper stage 1",
				aSHA1:       "Mirai",
				aSHA512:     "Mirai",
				aMD5:        "Mirai",
				fSHA256:     "late label",
			},
			absent: []string{bSHA256, bMD5},
		},
		{
			file:   "sha256sum.txt",
			counts: [numAlgos]int{1, 0, 3, 0},
			want: map[string]string{
				bSHA256: "/usr/local/bin/implant",
				cSHA256: "payload.bin",
				dSHA256: "dir\\with\nnewline",
				eMD5:    "name with  spaces.sh",
			},
		},
		{
			file:   "bazaar_sha256.txt", // CRLF, duplicate line, no final newline
			counts: [numAlgos]int{0, 0, 3, 0},
			want:   map[string]string{eSHA256: "", fSHA256: "", gSHA256: ""},
		},
		{
			file:   "malwarebazaar.csv",
			lc:     ListConfig{Format: FormatMalwareBazaar},
			counts: [numAlgos]int{2, 2, 3, 0},
			want: map[string]string{
				eicarSHA256: "Mirai", eicarMD5: "Mirai", eicarSHA1: "Mirai",
				// file_name holds `", "`: the signature is still found.
				aSHA256: "AgentTesla", aMD5: "AgentTesla", aSHA1: "AgentTesla",
				bSHA256: "", // signature n/a, md5 and sha1 n/a
			},
		},
		{
			file:   "threatfox.csv",
			lc:     ListConfig{Format: FormatThreatFox},
			counts: [numAlgos]int{1, 1, 1, 0},
			want: map[string]string{
				aSHA256: "Mirai",
				bMD5:    "Agent Tesla",
				bSHA1:   "unknown", // malware_printable n/a: fk_malware
			},
		},
		{
			file:   "threatfox_2024.csv", // no is_compromised column
			lc:     ListConfig{Format: FormatThreatFox},
			counts: [numAlgos]int{0, 0, 1, 0},
			want:   map[string]string{cSHA256: "RedLine Stealer"},
		},
		{
			file:   "nsrl.csv",
			lc:     ListConfig{Format: FormatCSV, Column: "sha-1", LabelColumn: "FileName", Header: true},
			counts: [numAlgos]int{0, 2, 0, 0},
			want:   map[string]string{eSHA1: "ls", fSHA1: "bash, the shell"},
			absent: []string{eMD5, fMD5},
		},
		{
			file:   "nsrl.csv",
			lc:     ListConfig{Format: FormatCSV, Column: "2", Header: true},
			counts: [numAlgos]int{2, 0, 0, 0},
			want:   map[string]string{eMD5: "", fMD5: ""},
		},
		{
			file:   "tools.tsv",
			lc:     ListConfig{Format: FormatCSV, Column: "3", LabelColumn: "1", Delimiter: "\t"},
			counts: [numAlgos]int{0, 0, 1, 0},
			want:   map[string]string{gSHA256: "curl"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file+"/"+tt.lc.format(), func(t *testing.T) {
			lc := tt.lc
			lc.Name, lc.Path = "t", filepath.Join("testdata", tt.file)
			c := Config{Lists: []ListConfig{lc}}
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			ix, _, err := loadFile(&lc)
			if err != nil {
				t.Fatal(err)
			}
			if got := ix.counts(); got != tt.counts {
				t.Errorf("counts (md5, sha1, sha256, sha512) = %v, want %v", got, tt.counts)
			}
			for h, label := range tt.want {
				for _, form := range []string{h, strings.ToUpper(h)} {
					got, ok := lookupHex(t, ix, form)
					if !ok || got != label {
						t.Errorf("lookup %s = %q, %v; want %q", form, got, ok, label)
					}
				}
			}
			for _, h := range tt.absent {
				if got, ok := lookupHex(t, ix, h); ok {
					t.Errorf("lookup %s = %q, want absent", h, got)
				}
			}
		})
	}
}

func TestMalformed(t *testing.T) {
	const (
		mbHead = "# \"first_seen_utc\",\"sha256_hash\"\n"
		mbRow  = `"2026-10-05 00:38:02", "` + aSHA256 + `", "` + aMD5 + `", "` + aSHA1 + `", "r", "f", "elf", "m", "Mirai", "n/a", "n/a", "n/a", "s", "t"` + "\n"
		tfRow  = `"2026-10-05 00:49:02", "1", "` + aSHA256 + `", "sha256_hash", "payload", "elf.mirai", "None", "Mirai", "", "75"` + "\n"
	)
	tests := []struct {
		name    string
		lc      ListConfig
		content string
		line    int
		reason  string
	}{
		{"plain short digest", ListConfig{}, "# c\n" + aSHA256 + "\n" + aSHA256[:63] + "\n", 3, "not an md5, sha1, sha256 or sha512 hex digest"},
		{"plain non-hex", ListConfig{}, "\n\nzz" + aMD5[2:] + " label\n", 3, "hex digest"},
		{"plain wrong prefix length", ListConfig{}, "sha256:" + aMD5 + "\n", 1, "hex digest"},
		{"plain unknown prefix", ListConfig{}, aSHA1 + "\ncrc32:deadbeef\n", 2, "hex digest"},
		{"plain word", ListConfig{}, "hello world\n", 1, `"hello"`},
		{"plain CRLF line count", ListConfig{}, "# x\r\n" + aMD5 + "\r\nbad\r\n", 3, "hex digest"},
		{"plain long line", ListConfig{}, aMD5 + "\n" + aMD5 + " " + strings.Repeat("x", maxLine) + "\n", 2, "line longer than"},
		{"bazaar unquoted", ListConfig{Format: FormatMalwareBazaar}, mbHead + mbRow + "2026-10-05, abc\n", 3, "double-quoted"},
		{"bazaar short row", ListConfig{Format: FormatMalwareBazaar}, mbHead + `"2026-10-05 00:38:02", "` + aSHA256 + `", "n/a"` + "\n", 2, "row has 3 fields, want at least 14"},
		{"bazaar bad sha256", ListConfig{Format: FormatMalwareBazaar}, mbRow + strings.Replace(mbRow, aSHA256, aSHA256[:60], 1), 2, "column 2"},
		{"bazaar sha256 n/a", ListConfig{Format: FormatMalwareBazaar}, strings.Replace(mbRow, aSHA256, "n/a", 1), 1, "not a sha256 digest"},
		{"bazaar md5 column holds sha1", ListConfig{Format: FormatMalwareBazaar}, strings.Replace(mbRow, aMD5, aSHA1, 1), 1, "column 3"},
		{"threatfox bad value", ListConfig{Format: FormatThreatFox}, tfRow + strings.Replace(tfRow, aSHA256, "zz", 1), 2, "ioc_value"},
		{"threatfox type mismatch", ListConfig{Format: FormatThreatFox}, strings.Replace(tfRow, "sha256_hash", "md5_hash", 1), 1, "not a md5 digest"},
		{"threatfox short row", ListConfig{Format: FormatThreatFox}, "# h\n" + `"a", "b", "c"` + "\n", 2, "at least 8"},
		{"csv bad digest", ListConfig{Format: FormatCSV, Column: "1"}, aMD5 + ",x\n# c\nnothex,y\n", 3, "column 1"},
		{"csv missing column", ListConfig{Format: FormatCSV, Column: "2"}, "x," + aMD5 + "\nonly\n", 2, "row has 1 fields"},
		{"csv header without column", ListConfig{Format: FormatCSV, Column: "sha256", Header: true}, "# c\nmd5,name\n", 2, `header has no column "sha256"`},
		{"csv header without label column", ListConfig{Format: FormatCSV, Column: "md5", LabelColumn: "family", Header: true}, "md5,name\n", 1, `"family"`},
		{"csv after multi-line field", ListConfig{Format: FormatCSV, Column: "1", LabelColumn: "2", Delimiter: ";"}, aMD5 + ";\"two\nlines\"\nn/a;x\n" + aMD5 + "x;y\n", 4, "column 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lc := tt.lc
			lc.Name = "t"
			lc.Path = filepath.Join(t.TempDir(), "list")
			if err := os.WriteFile(lc.Path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			ix, _, err := loadFile(&lc)
			if err == nil {
				t.Fatalf("loaded %d entries, want an error", ix.len())
			}
			var le *LineError
			if !errors.As(err, &le) {
				t.Fatalf("error %v (%T) is not a *LineError", err, err)
			}
			if le.File != lc.Path || le.Line != tt.line || !strings.Contains(le.Reason, tt.reason) {
				t.Errorf("error %q: want %s:%d and reason containing %q", err, lc.Path, tt.line, tt.reason)
			}
			if !strings.HasPrefix(err.Error(), lc.Path+":"+strconv.Itoa(tt.line)+": ") {
				t.Errorf("error %q does not start with file:line", err)
			}
		})
	}
}

func TestSplitQuoted(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		ok   bool
	}{
		{`"a", "b", "c"`, []string{"a", "b", "c"}, true},
		{`"a","b"`, []string{"a", "b"}, true},
		{`"a",   "b"`, []string{"a", "b"}, true},
		{`""`, []string{""}, true},
		{`"x", "file ",name.exe", "y"`, []string{"x", `file ",name.exe`, "y"}, true},
		{`"a", b`, nil, false},
		{`"`, nil, false},
		{``, nil, false},
	}
	for _, tt := range tests {
		got, ok := splitQuoted([]byte(tt.in), nil)
		var gs []string
		for _, f := range got {
			gs = append(gs, string(f))
		}
		if ok != tt.ok || strings.Join(gs, "|") != strings.Join(tt.want, "|") || len(gs) != len(tt.want) {
			t.Errorf("splitQuoted(%q) = %q, %v; want %q, %v", tt.in, gs, ok, tt.want, tt.ok)
		}
	}
}
