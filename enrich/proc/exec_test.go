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

// An exec's image and the copy of its strings are one allocation when exe,
// uid, auid and argv fit in 192 bytes (the small or the large image, both
// Go size classes), two beyond; the args, whatever their size, are the
// same strings as the event's.
func TestExecImageAllocations(t *testing.T) {
	if a, b := unsafe.Sizeof(smallImage{}), unsafe.Sizeof(largeImage{}); a != 320 || b != 416 {
		t.Errorf("image sizes %d and %d, want the size classes 320 and 416", a, b)
	}
	tb := newTable(t, 64, false)
	allocs := func(arg string) float64 {
		ev := execEvent(1_700_000_000_000, 4242, 1, "/usr/bin/bash", "bash", "-c", arg)
		enrichOK(t, tb, ev) // the pid's first image: the LRU grows
		n := testing.AllocsPerRun(20, func() { enrichOK(t, tb, ev) })
		if img, ok := tb.Lookup(4242, 0); !ok || len(img.Args) != 3 || img.Args[2] != arg || img.Exe != "/usr/bin/bash" || img.UID != "1000" {
			t.Errorf("image of %d-byte argument: %+v", len(arg), img)
		}
		return n
	}
	short, medium, long := allocs("ls -l /var/log"), allocs(strings.Repeat("m", 120)), allocs(strings.Repeat("l", 300))
	if medium != short || long != short+1 {
		t.Errorf("allocations per exec: short argv %v, 120 bytes %v, 300 bytes %v; want the same, the same, one more", short, medium, long)
	}
}
