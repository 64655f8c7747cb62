package proc

import (
	"strings"
	"testing"
	"unsafe"
)

func TestOwnCopyBounds(t *testing.T) {
	many := make([]string, 100)
	for i := range many {
		many[i] = "x"
	}
	if got := ownCopy(nil, many, nil, nil); len(got) != maxArgs {
		t.Errorf("ownCopy kept %d args, want %d", len(got), maxArgs)
	}
	long := []string{"a", strings.Repeat("b", 5000), "c"}
	got := ownCopy(nil, long, nil, nil)
	total := 0
	for _, a := range got {
		total += len(a)
	}
	if total != maxArgsBytes || len(got) != 2 || got[0] != "a" {
		t.Errorf("ownCopy kept %d bytes in %d args", total, len(got))
	}
	if got := ownCopy(nil, nil, nil, nil); got != nil {
		t.Error("ownCopy(nil, nil, nil, nil) != nil")
	}
	f := []string{"/usr/bin/x", "1000"}
	var room [2]string
	if got := ownCopy(f, []string{"x", "y"}, room[:0], nil); f[0] != "/usr/bin/x" || f[1] != "1000" || &got[0] != &room[0] || got[1] != "y" {
		t.Errorf("ownCopy fields = %q, args %q (in the given room: %v)", f, got, &got[0] == &room[0])
	}
	// Bytes go to the given text when they fit, else to a buffer of their
	// own; either way they no longer share the caller's memory.
	line := []byte("/usr/bin/tool 1000 -v")
	inLine := func(i, j int) string { return unsafe.String(&line[i], j-i) }
	for _, size := range []int{64, 8} {
		text := make([]byte, size)
		f := []string{inLine(0, 13), inLine(14, 18)}
		args := ownCopy(f, []string{inLine(19, 21)}, nil, text)
		copy(line, "XXXXXXXXXXXXXXXXXXXXX")
		if f[0] != "/usr/bin/tool" || f[1] != "1000" || len(args) != 1 || args[0] != "-v" {
			t.Errorf("text of %d: fields %q args %q after the source changed", size, f, args)
		}
		if in := unsafe.StringData(f[0]) == &text[0]; in != (size == 64) {
			t.Errorf("text of %d: copied into it: %v", size, in)
		}
		line = []byte("/usr/bin/tool 1000 -v")
	}
}
