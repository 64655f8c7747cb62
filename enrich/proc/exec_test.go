package proc

import (
	"strings"
	"testing"
)

func TestOwnCopyBounds(t *testing.T) {
	many := make([]string, 100)
	for i := range many {
		many[i] = "x"
	}
	if got := ownCopy(nil, many, nil); len(got) != maxArgs {
		t.Errorf("ownCopy kept %d args, want %d", len(got), maxArgs)
	}
	long := []string{"a", strings.Repeat("b", 5000), "c"}
	got := ownCopy(nil, long, nil)
	total := 0
	for _, a := range got {
		total += len(a)
	}
	if total != maxArgsBytes || len(got) != 2 || got[0] != "a" {
		t.Errorf("ownCopy kept %d bytes in %d args", total, len(got))
	}
	if got := ownCopy(nil, nil, nil); got != nil {
		t.Error("ownCopy(nil, nil, nil) != nil")
	}
	f := []string{"/usr/bin/x", "1000"}
	var room [2]string
	if got := ownCopy(f, []string{"x", "y"}, room[:0]); f[0] != "/usr/bin/x" || f[1] != "1000" || &got[0] != &room[0] || got[1] != "y" {
		t.Errorf("ownCopy fields = %q, args %q (in the given room: %v)", f, got, &got[0] == &room[0])
	}
}
