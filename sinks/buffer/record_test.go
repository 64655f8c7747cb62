package buffer

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/sinks"
)

// FuzzSegment feeds arbitrary bytes to the segment reader as a spool file:
// it must not panic, every record it returns must pass its CRC and decode
// without aliasing, and it must make progress to the end.
func FuzzSegment(f *testing.F) {
	var seg []byte
	seg = append(seg, segMagic...)
	for i, m := range []sinks.Message{
		{Seq: 5, Value: []byte(`{"a":1}`)},
		{Seq: 6, Key: []byte("k"), Value: []byte("v"), Meta: sinks.Meta{Node: "n", Types: []string{"EXECVE"}, Keys: []string{"exec"}, Techniques: []string{"T1059"}, Severity: 4, Kind: "alert"}},
	} {
		seg = appendRecord(seg, &m, time.Unix(int64(i), 0))
	}
	f.Add(seg)
	f.Add(seg[:len(seg)-3])
	f.Add(append(bytes.Clone(seg), make([]byte, 40)...))
	dir := f.TempDir() // executions in one worker run one at a time
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, segName(5))
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		s := newSegment(dir, 5)
		s.size = int64(len(data))
		r, err := openSegReader(s)
		if err != nil {
			t.Fatal(err)
		}
		defer r.close()
		var dc decodeCache // shared by the records, as the reader's is
		type decoded struct {
			m   sinks.Message
			rec []byte
		}
		var all []decoded
		for steps := 0; ; steps++ {
			if steps > len(data)+1 {
				t.Fatal("reader made no progress")
			}
			rec, _, _, _, err := r.next(s.size)
			if err != nil {
				t.Fatal(err)
			}
			if rec == nil {
				break
			}
			if n, _ := recordAt(rec); n != len(rec) {
				t.Fatalf("returned a record that does not check: %d != %d", n, len(rec))
			}
			m, err := decodeRecord(rec, &dc)
			if err != nil {
				continue // CRC-valid but malformed body: counted as corrupt by the caller
			}
			// Re-encoding gives the same record (modulo time, which we copy).
			again := appendRecord(nil, &m, recTime(rec))
			if !bytes.Equal(again, rec) {
				t.Fatalf("re-encoding differs:\n%x\n%x", again, rec)
			}
			all = append(all, decoded{m, bytes.Clone(rec)})
		}
		// Decoding later records did not change earlier messages.
		for _, d := range all {
			if again := appendRecord(nil, &d.m, recTime(d.rec)); !bytes.Equal(again, d.rec) {
				t.Fatalf("message %d changed after later records were decoded", d.m.Seq)
			}
		}
	})
}

// FuzzMarker: the ack marker decoder must reject or round-trip anything.
func FuzzMarker(f *testing.F) {
	var s ackSet
	for _, q := range []uint64{1, 2, 3, 7, 9, 10} {
		s.add(q)
	}
	f.Add(encodeMarker(11, &s))
	f.Add([]byte(markerMagic))
	f.Fuzz(func(t *testing.T, data []byte) {
		next, set, err := decodeMarker(data)
		if err != nil {
			return
		}
		if !bytes.Equal(encodeMarker(next, &set), data) {
			t.Fatal("accepted marker does not round-trip")
		}
	})
}

func TestAckSet(t *testing.T) {
	var s ackSet
	for _, q := range []uint64{5, 3, 4, 10, 8, 9, 1, 4, 12} {
		s.add(q)
	}
	want := []seqRange{{1, 2}, {3, 6}, {8, 11}, {12, 13}}
	if !reflect.DeepEqual(s.r, want) {
		t.Fatalf("ranges %v, want %v", s.r, want)
	}
	for q, in := range map[uint64]bool{0: false, 1: true, 2: false, 5: true, 6: false, 10: true, 11: false, 12: true} {
		if s.contains(q) != in {
			t.Errorf("contains(%d) = %v", q, !in)
		}
	}
	// countIn against counting with contains, for every interval in 0..15.
	for lo := uint64(0); lo < 15; lo++ {
		for hi := lo; hi <= 15; hi++ {
			var n uint64
			for q := lo; q < hi; q++ {
				if s.contains(q) {
					n++
				}
			}
			if got := s.countIn(lo, hi); got != n {
				t.Errorf("countIn(%d, %d) = %d, want %d", lo, hi, got, n)
			}
		}
	}
	s.pruneBelow(4)
	if !reflect.DeepEqual(s.r, []seqRange{{4, 6}, {8, 11}, {12, 13}}) {
		t.Fatalf("after prune %v", s.r)
	}
}

func TestSpoolDir(t *testing.T) {
	for name, want := range map[string]string{
		"kafka-main": "/var/lib/ae/spool/kafka-main",
		"../etc":     "/var/lib/ae/spool/.._etc",
		"..":         "/var/lib/ae/spool/_..",
		"":           "/var/lib/ae/spool/_",
		"a b/c":      "/var/lib/ae/spool/a_b_c",
	} {
		if got := SpoolDir("/var/lib/ae", name); got != want {
			t.Errorf("SpoolDir(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestConfigDefaultsPerType(t *testing.T) {
	c := DefaultConfig()
	c.Type = TypeMemory // as a config file would override it
	if d := c.withDefaults(); d.MaxBytes != DefaultMemoryMaxBytes || d.MaxEvents != DefaultMemoryMaxEvents {
		t.Fatalf("memory defaults %+v", d)
	}
	if d := DefaultConfig().withDefaults(); d.MaxBytes != DefaultDiskMaxBytes || d.MaxEvents != 0 {
		t.Fatalf("disk defaults %+v", d)
	}
}

func TestConfigValidate(t *testing.T) {
	good := DefaultConfig()
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]Config{
		"type":      {Type: "tape"},
		"when_full": {WhenFull: "panic"},
		"max_bytes": {MaxBytes: 100},
		"negative":  {MaxEvents: -1},
		"interval":  {FsyncInterval: time.Hour},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%s: accepted %+v", name, c)
		}
	}
	if _, err := Open(Config{Type: TypeDisk}, Options{}); err == nil {
		t.Error("disk buffer without dir opened")
	}
}

// BenchmarkDiskThroughput measures the disk buffer end to end with 1 KiB
// messages: one goroutine appends in calls of 64, another reads batches of
// 500 and acks them, with the default fsync policy (200ms / 1 MiB).
func BenchmarkDiskThroughput(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "spool")
	buf, err := Open(Config{Type: TypeDisk, Dir: dir, MaxBytes: 1 << 30, WhenFull: Block, FsyncBytes: benchFsyncBytes}, Options{Name: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer buf.Close()
	d := buf.(*disk)
	val := bytes.Repeat([]byte("x"), 1024)
	b.SetBytes(1024)
	b.ResetTimer()
	start, syncs0 := time.Now(), d.fsyncs.Load()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for got := 0; got < b.N; {
			batch, err := buf.ReadBatch(context.Background(), 500, 1<<20)
			if err != nil {
				b.Error(err)
				return
			}
			buf.Ack(seqs(batch)...)
			got += len(batch)
		}
	}()
	ms := make([]sinks.Message, 64)
	for i := 0; i < b.N; i += len(ms) {
		n := min(len(ms), b.N-i)
		for j := range n {
			ms[j] = sinks.Message{Value: val}
		}
		if err := buf.Append(ms[:n]...); err != nil {
			b.Fatal(err)
		}
	}
	<-done
	el := time.Since(start).Seconds()
	b.ReportMetric(float64(b.N)/el, "msgs/s")
	b.ReportMetric(float64(d.fsyncs.Load()-syncs0)/el, "fsyncs/s")
}

var benchFsyncBytes = DefaultFsyncBytes

// BenchmarkDiskReopen measures recovery: Open of a spool holding 256 MiB of
// unacknowledged 1 KiB messages (every record is read and CRC-checked).
func BenchmarkDiskReopen(b *testing.B) {
	cfg := Config{Type: TypeDisk, Dir: filepath.Join(b.TempDir(), "spool"), MaxBytes: 1 << 30}
	buf, err := Open(cfg, Options{})
	if err != nil {
		b.Fatal(err)
	}
	val := bytes.Repeat([]byte("x"), 1024)
	ms := make([]sinks.Message, 256)
	for range 1024 {
		for j := range ms {
			ms[j] = sinks.Message{Value: val}
		}
		if err := buf.Append(ms...); err != nil {
			b.Fatal(err)
		}
	}
	buf.Close()
	b.ResetTimer()
	for range b.N {
		buf, err := Open(cfg, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if buf.Len() != 1024*256 {
			b.Fatalf("Len %d", buf.Len())
		}
		buf.Close()
	}
	b.ReportMetric(float64(256<<20)/(float64(b.Elapsed().Nanoseconds())/float64(b.N))*1e9/1e6, "MB/s")
}
