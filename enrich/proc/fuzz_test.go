package proc

import (
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("1234 (a b) c) S 77 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 5678 1000 100\n"))
	f.Add([]byte("1 (systemd) S 0 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 3 0 0"))
	f.Add([]byte("1 )x( S 0 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 3 0 0"))
	f.Fuzz(func(t *testing.T, b []byte) {
		comm, _, _, err := parseStat(b) // must not panic
		if err == nil && len(comm) >= len(b) {
			t.Fatalf("parseStat(%q): comm %q, as long as the line", b, comm)
		}
	})
}

// FuzzImage stores any argv (the input split into arguments at NUL bytes,
// the input also as exe, or as comm when pid has bit 16 set, and, cut at
// 100 bytes, as uid) in a small table, over older images of the same
// pids, and checks what Lookup returns: the argv within its bounds, each
// argument a prefix of the original (whole when within the bounds),
// nothing shared with the input, which is overwritten after the call; and
// that the view events get reads the same image back; and that the arena
// neither leaks nor double-frees blocks.
func FuzzImage(f *testing.F) {
	f.Add("ls\x00-l\x00/tmp", uint8(1))
	f.Add(strings.Repeat("x\x00", 100), uint8(2))
	f.Add(strings.Repeat("y", 5000)+"\x00z", uint8(3))
	f.Add(strings.Repeat("w", 300)+"\x00\x00v", uint8(9))
	f.Add("php-fpm8.2\x00pool www", uint8(17))
	tb := newTable(f, 4, false)
	var start int64
	f.Fuzz(func(t *testing.T, s string, pid uint8) {
		src := []byte(s)
		line := unsafe.String(unsafe.SliceData(src), len(src)) // the event's line, overwritten below
		start++
		in := Image{Exe: line, UID: line[:min(len(line), 100)], Args: audit.SplitNUL(line, nil), StartMilli: start}
		byComm := pid&16 != 0
		if byComm {
			in.Exe, in.Comm = "", line
		}
		tb.Record(int(pid%8)+1, in)
		for i := range src {
			src[i] = '#'
		}
		img, ok := tb.Lookup(int(pid%8)+1, 0)
		if !ok {
			t.Fatal("image not found")
		}
		exe, comm := s[:min(len(s), maxExeBytes)], ""
		if byComm {
			exe, comm = "", exe
		}
		if img.Exe != exe || img.Comm != comm || img.UID != s[:min(len(s), maxIDBytes)] {
			t.Fatalf("exe %q comm %q uid %q", img.Exe, img.Comm, img.UID)
		}
		args := audit.SplitNUL(s, nil) // what the copies must equal
		if len(img.Args) > maxArgs {
			t.Fatalf("%d args beyond the limit", len(img.Args))
		}
		n, whole := 0, len(args) <= maxArgs && len(strings.Join(args, "")) <= maxArgsBytes
		for i, a := range img.Args {
			n += len(a)
			if !strings.HasPrefix(args[i], a) || whole && a != args[i] {
				t.Fatalf("arg %d %q is not %q or a prefix of it", i, a, args[i])
			}
		}
		if n > maxArgsBytes || whole && len(img.Args) != len(args) {
			t.Fatalf("kept %d bytes in %d args of %d", n, len(img.Args), len(args))
		}
		// The view events get (a parent's) reads the same image back.
		v, _, err := tb.find(t.Context(), int(pid%8)+1, 0)
		if err != nil || v == nil {
			t.Fatalf("find: %v, %v", v, err)
		}
		if v.p.Executable != img.Exe || v.p.Comm != img.Comm || v.p.UID != img.UID || !slices.Equal(v.p.Args, img.Args) {
			t.Fatalf("view %+v, image %+v", v.p, img)
		}
		checkArena(t, tb)
	})
}
