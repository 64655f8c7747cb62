package proc

import (
	"strings"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("1234 (a b) c) S 77 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 5678 1000 100\n"))
	f.Add([]byte("1 (systemd) S 0 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 3 0 0"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, _ = parseStat(b) // must not panic
	})
}

// FuzzArgv feeds EXECVE records whose field names and values come from the
// input ("name=value" pairs separated by spaces).
func FuzzArgv(f *testing.F) {
	f.Add("argc=3 a0=ls a1_len=4 a1[0]=6162 a1[1]=6364 a2=x")
	f.Add("a999999=x a0=y")
	f.Add("a0[=x a[1]=y a01=z")
	f.Fuzz(func(t *testing.T, s string) {
		r := &audit.Record{Type: "EXECVE"}
		for _, kv := range strings.Fields(s) {
			k, v, _ := strings.Cut(kv, "=")
			r.Fields = append(r.Fields, audit.Field{Name: k, Raw: v, Value: v})
		}
		args := Argv(&audit.Event{Records: []*audit.Record{r}}, 0)
		if len(args) > maxArgs {
			t.Fatalf("%d args beyond the limit", len(args))
		}
		own := ownArgs(args)
		n := 0
		for _, a := range own {
			n += len(a)
		}
		if n > maxArgsBytes {
			t.Fatalf("ownArgs kept %d bytes", n)
		}
	})
}
