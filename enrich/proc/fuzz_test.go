package proc

import (
	"strings"
	"testing"
	"unsafe"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("1234 (a b) c) S 77 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 5678 1000 100\n"))
	f.Add([]byte("1 (systemd) S 0 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 3 0 0"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, _ = parseStat(b) // must not panic
	})
}

// FuzzOwnCopy checks the bounds a table entry keeps of any argv (the input
// is split into arguments at NUL bytes), with and without an entry's own
// room for the bytes, and that the copies share nothing with the input.
func FuzzOwnCopy(f *testing.F) {
	f.Add("ls\x00-l\x00/tmp", true)
	f.Add(strings.Repeat("x\x00", 100), false)
	f.Add(strings.Repeat("y", 5000)+"\x00z", true)
	f.Fuzz(func(t *testing.T, s string, room bool) {
		src := []byte(s)
		line := unsafe.String(unsafe.SliceData(src), len(src)) // the event's line, overwritten below
		args := audit.SplitNUL(line, nil)
		fields := []string{line}
		var text []byte
		if room {
			text = make([]byte, len(smallImage{}.text))
		}
		own := ownCopy(fields, args, nil, text)
		args = audit.SplitNUL(s, nil) // what the copies must equal
		for i := range src {
			src[i] = '#'
		}
		if fields[0] != s {
			t.Fatalf("field changed: %q", fields[0])
		}
		if len(own) > maxArgs {
			t.Fatalf("%d args beyond the limit", len(own))
		}
		n := 0
		for i, a := range own {
			n += len(a)
			if !strings.HasPrefix(args[i], a) {
				t.Fatalf("arg %d %q is not a prefix of %q", i, a, args[i])
			}
		}
		if n > maxArgsBytes {
			t.Fatalf("ownCopy kept %d bytes", n)
		}
	})
}
