package attack

import (
	"bufio"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestParseKey(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		{"T1234", []string{"T1234"}},
		{"T1234.001", []string{"T1234.001"}},
		{"T1548.001_12", []string{"T1548.001"}},
		{"T1548.001-12", []string{"T1548.001"}},
		{"T1068_CVE_2021_3560", []string{"T1068"}},
		{"T1014_Rootkit", []string{"T1014"}},
		{"T1016_0", []string{"T1016"}},
		{"Deobfuscate_T1140", []string{"T1140"}},
		{"detect-T1140-b64", []string{"T1140"}},
		{"t1014_rootkit", []string{"T1014"}},
		{"\tt1014_rootkit", []string{"T1014"}},
		{"  T1059.004 \t", []string{"T1059.004"}},
		{"T1053.003-Scheduled Task-Job-Cron", []string{"T1053.003"}},
		{"T1548.001_12\x01T1068", []string{"T1548.001", "T1068"}},
		{"T1059_T1105", []string{"T1059", "T1105"}},
		{"T1059 T1059", []string{"T1059"}},
		{"T1059.004\x01t1059.004", []string{"T1059.004"}},
		{"T1059.004,T1059", []string{"T1059.004", "T1059"}},
		{"T9999_unknown", []string{"T9999"}}, // syntax only; Lookup says unknown
		{"T1059.0042", []string{"T1059"}},
		{"T1059.004a", []string{"T1059"}},
		{"T1059.", []string{"T1059"}},
		{"T1059.04", []string{"T1059"}},
		{"(T1059)", []string{"T1059"}},
		{"é T1059", []string{"T1059"}},
		// No id.
		{"", nil},
		{"(null)", nil},
		{"recon", nil},
		{"susp_activity", nil},
		{"-F", nil},
		{"XT1059", nil},
		{"T10590", nil},
		{"T105", nil},
		{"T1059x", nil},
		{"TA0002", nil},
		{"T", nil},
		{"tttt", nil},
		{"AT1059.004", nil},
	}
	for _, c := range cases {
		if got := ParseKey(c.in); !reflect.DeepEqual(got, c.want) {
			t.Errorf("ParseKey(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// refParse is an independent statement of the id syntax: at every T/t that
// does not follow a letter or digit, the longest of "T1234.567" or "T1234"
// that is not followed by a letter or digit.
var reAt = regexp.MustCompile(`^([Tt][0-9]{4}(?:\.[0-9]{3})?)(?:[^A-Za-z0-9]|$)`)

func refParse(s string) []string {
	var ids []string
	for i := 0; i < len(s); i++ {
		if i > 0 && isAlnumRef(s[i-1]) {
			continue
		}
		m := reAt.FindStringSubmatch(s[i:])
		if m == nil {
			continue
		}
		id := "T" + m[1][1:] // not strings.ToUpper: it rewrites invalid UTF-8
		seen := false
		for _, x := range ids {
			seen = seen || x == id
		}
		if !seen {
			ids = append(ids, id)
		}
		i += len(id) - 1
	}
	return ids
}

func isAlnumRef(c byte) bool {
	return strings.IndexByte("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", c) >= 0
}

// messyKeys reads testdata/messy-keys.txt (\t and \x01 escapes decoded).
func messyKeys(t testing.TB) []string {
	f, err := os.Open("testdata/messy-keys.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var keys []string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		k, err := strconv.Unquote(`"` + strings.ReplaceAll(line, `"`, `\"`) + `"`)
		if err != nil {
			t.Fatalf("testdata/messy-keys.txt:%d: %v", n, err)
		}
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return keys
}

func TestParseKeyMatchesReference(t *testing.T) {
	for _, k := range messyKeys(t) {
		if got, want := ParseKey(k), refParse(k); !reflect.DeepEqual(got, want) {
			t.Errorf("ParseKey(%q) = %q, reference %q", k, got, want)
		}
	}
}

var reCanonical = regexp.MustCompile(`^T[0-9]{4}(\.[0-9]{3})?$`)

func FuzzParseKey(f *testing.F) {
	for _, k := range messyKeys(f) {
		f.Add(k)
	}
	e, err := New(DefaultConfig(), nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, key string) {
		got := ParseKey(key)
		if want := refParse(key); !reflect.DeepEqual(got, want) {
			t.Fatalf("ParseKey(%q) = %q, reference %q", key, got, want)
		}
		for _, id := range got {
			if !reCanonical.MatchString(id) || !strings.Contains(key, id[1:]) {
				t.Fatalf("ParseKey(%q): %q is not a canonical id taken from the key", key, id)
			}
		}
		// The enricher must take any key= value without panicking, and
		// tag only catalog techniques.
		ev := eventWithKeys(key)
		if err := e.Enrich(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
		for _, te := range ev.Techniques {
			if _, ok := byID[te.ID]; !ok || te.Name == "" || !strings.HasPrefix(te.Source, "key:") {
				t.Fatalf("key %q: bad technique %+v", key, te)
			}
		}
	})
}
