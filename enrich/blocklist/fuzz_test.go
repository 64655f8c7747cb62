package blocklist

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
)

func seed(f *testing.F, files ...string) {
	f.Helper()
	for _, name := range files {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// fuzzLoad parses data in the format of lc and checks that the result is
// either a LineError naming the input and a line that exists, or a valid
// index.
func fuzzLoad(t *testing.T, lc ListConfig, data []byte) *index {
	lc.Name, lc.Path = "fuzz", "fuzz.txt"
	ix, err := parse(bytes.NewReader(data), lc.Path, &lc, int64(len(data)))
	if err != nil {
		var le *LineError
		if !errors.As(err, &le) {
			t.Fatalf("error %v (%T) is not a LineError", err, err)
		}
		if le.File != lc.Path || le.Line < 1 || le.Line > bytes.Count(data, []byte("\n"))+1 {
			t.Fatalf("error %q names a line outside the %d-byte input", err, len(data))
		}
		if !strings.HasPrefix(err.Error(), "fuzz.txt:") {
			t.Fatalf("error %q does not start with the file name", err)
		}
		return nil
	}
	checkIndex(t, ix)
	return ix
}

func FuzzLoadPlain(f *testing.F) {
	seed(f, "plain.txt", "sha256sum.txt", "bazaar_sha256.txt")
	f.Add([]byte("\xef\xbb\xbf" + aMD5 + "\r\n\\" + aSHA1 + "  a\\\\b\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ix := fuzzLoad(t, ListConfig{}, data)
		if ix == nil {
			return
		}
		// Every digest line of an accepted file is in the index.
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(nil, maxLine+1)
		first := true
		for sc.Scan() {
			line := sc.Text()
			if first {
				line = strings.TrimPrefix(line, "\ufeff")
				first = false
			}
			line = strings.Trim(line, " \t\r")
			if line == "" || line[0] == '#' {
				continue
			}
			tok := strings.FieldsFunc(strings.TrimPrefix(line, `\`), func(r rune) bool { return r == ' ' || r == '\t' })[0]
			if _, ok := lookupHex(t, ix, tok); !ok {
				t.Fatalf("accepted line %q: digest %q not in the index", line, tok)
			}
		}
	})
}

func FuzzLoadMalwareBazaar(f *testing.F) {
	seed(f, "malwarebazaar.csv")
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzLoad(t, ListConfig{Format: FormatMalwareBazaar}, data)
	})
}

func FuzzLoadThreatFox(f *testing.F) {
	seed(f, "threatfox.csv", "threatfox_2024.csv")
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzLoad(t, ListConfig{Format: FormatThreatFox}, data)
	})
}

func FuzzLoadCSV(f *testing.F) {
	seed(f, "nsrl.csv", "tools.tsv")
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzLoad(t, ListConfig{Format: FormatCSV, Column: "sha-1", LabelColumn: "FileName", Header: true}, data)
		fuzzLoad(t, ListConfig{Format: FormatCSV, Column: "3", LabelColumn: "1", Delimiter: "\t"}, data)
	})
}
