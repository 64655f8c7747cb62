package plugin

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/conf"
)

// TestReaderLineNumbers: every line the reader hands out carries its
// 1-based number in the stream, also when lines it rejected (too long) or
// skipped (empty) come before it in the same batch or across batches, and
// every report of a line gives that line's number; binary frames are not
// lines and carry none.
func TestReaderLineNumbers(t *testing.T) {
	const total = 1500 // several batches (256 lines at most) and buffer refills
	var in strings.Builder
	tooLong := map[int64]bool{}
	var kept []int64
	for n := int64(1); n <= total; n++ {
		switch {
		case n%7 == 0:
			in.WriteString("\n")
		case n%13 == 0:
			tooLong[n] = true
			fmt.Fprintf(&in, "type=EOE msg=audit(1.000:%d): %s\n", n, strings.Repeat("x", 2000))
		case n == 20:
			fmt.Fprintf(&in, "type=EOE msg=audit(1.000:%d): \x00\n", n) // nul_byte: reported, handed on
			kept = append(kept, n)
		default:
			fmt.Fprintf(&in, "type=EOE msg=audit(1.000:%d): \n", n)
			kept = append(kept, n)
		}
	}
	res := readAll(t, strings.NewReader(in.String()), FramingString, 1024)
	if res.err != nil {
		t.Fatal(res.err)
	}
	if len(res.numbers) != len(kept) {
		t.Fatalf("%d lines handed out, want %d", len(res.numbers), len(kept))
	}
	for i, l := range res.lines {
		var n int64
		if _, err := fmt.Sscanf(l, "type=EOE msg=audit(1.000:%d)", &n); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if res.numbers[i] != n || n != kept[i] {
			t.Fatalf("line %q handed out as number %d, want %d", l, res.numbers[i], n)
		}
	}
	var reported []int64
	for _, e := range res.errs {
		switch e.Reason {
		case "too_long":
			reported = append(reported, e.Line)
		case "nul_byte":
			if e.Line != 20 {
				t.Errorf("nul_byte reported at line %d, want 20", e.Line)
			}
		default:
			t.Errorf("unexpected report %v", e)
		}
	}
	want := make([]int64, 0, len(tooLong))
	for n := range tooLong {
		want = append(want, n)
	}
	slices.Sort(want)
	if !slices.Equal(reported, want) {
		t.Errorf("too_long reported at lines %v, want %v", reported, want)
	}

	bin := readAll(t, bytes.NewReader(append(frame(0, 1300, "audit(1.000:1): arch=c000003e", false),
		frame(0, 1320, "audit(1.000:1): ", false)...)), FramingBinaryAuto, 64<<10)
	if len(bin.lines) != 2 || !slices.Equal(bin.numbers, []int64{0, 0}) {
		t.Errorf("binary frames: lines %q numbered %v, want 2 numbered 0", bin.lines, bin.numbers)
	}
}

// TestReplayRejectedLinePosition: replay logs each rejected line (by the
// parser or by the reader) with file= as given and line= its number in
// that file: in a plain file, in a gzip file (the number in the
// decompressed text), and on stdin ("-"), in one run, so the numbers
// start again with each file.
func TestReplayRejectedLinePosition(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "audit.log")
	gz := filepath.Join(dir, "audit.log.1.gz")
	truncated := "type=SYSCALL msg=audit(1700000000.009:9): comm=\"x\" exe=\"/bin/x\n"
	must(t, os.WriteFile(plain, []byte(event(1)+ // lines 1-2
		truncated+ // 3
		event(2)+ // 4-5
		"\n"+ // 6: empty, skipped
		"garbage\n"+ // 7
		"type=EOE msg=audit(1700000000.003:3): "+strings.Repeat("x", 20000)+"\n"+ // 8: too_long
		event(3)), 0o644)) // 9-10
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	fmt.Fprint(zw, event(4)+event(5)+"garbage\n"+event(6))
	must(t, zw.Close())
	must(t, os.WriteFile(gz, z.Bytes(), 0o644))
	stdin := strings.NewReader(event(7) + truncated)

	cfg, err := conf.Parse("position.toml", []byte(fmt.Sprintf(`
state_dir = %q
[input]
max_line_bytes = 16384
[log]
syslog = false
[enrich.proc]
enabled = false
[[sink]]
type = "file"
[sink.file]
path = %q
`, dir, filepath.Join(dir, "out.jsonl"))))
	if err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	if err := Replay(context.Background(), cfg, log, []string{plain, gz, "-"}, ReplayOptions{Stdin: stdin}); err != nil {
		t.Fatal(err)
	}
	entry := regexp.MustCompile(`msg="rejected input" file=(\S+) line=(\d+) reason=(\S+) `)
	var got []string
	for _, l := range strings.Split(logged.String(), "\n") {
		if m := entry.FindStringSubmatch(l); m != nil {
			got = append(got, m[1]+":"+m[2]+" "+m[3])
		} else if strings.Contains(l, "rejected input") {
			t.Errorf("rejected input without its file and line: %s", l)
		}
	}
	// The reader runs ahead of the parser: its reports (too_long) may come
	// first.
	want := []string{plain + ":3 truncated", plain + ":7 no_type", plain + ":8 too_long", gz + ":5 no_type", "-:3 truncated"}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("rejected input logged at\n  %s\nwant\n  %s\nlog:\n%s", strings.Join(got, "\n  "), strings.Join(want, "\n  "), logged.String())
	}
}
