package buffer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/sinks"
)

// The shared suite: every Buffer implementation runs RunSuite. Durable
// implementations also run the reopen and crash cases, which look at the
// spool files in cfg.Dir.

func TestMemorySuite(t *testing.T) {
	RunSuite(t, TypeMemory, false)
}

func TestDiskSuite(t *testing.T) {
	RunSuite(t, TypeDisk, true)
}

// drops records OnDrop reports.
type drops struct {
	mu sync.Mutex
	m  map[string]int
}

func (d *drops) add(n int, reason string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m == nil {
		d.m = map[string]int{}
	}
	d.m[reason] += n
}

func (d *drops) get(reason string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.m[reason]
}

// total is the sum of every reason's reports but except's.
func (d *drops) total(except string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for r, k := range d.m {
		if r != except {
			n += k
		}
	}
	return n
}

type harness struct {
	t     *testing.T
	typ   string
	dir   string
	drops *drops
}

func (h *harness) cfg() Config {
	c := Config{Type: h.typ, Dir: h.dir, MaxBytes: 1 << 20, FsyncInterval: 20 * time.Millisecond}
	return c
}

func (h *harness) open(cfg Config) Buffer {
	h.t.Helper()
	b, err := Open(cfg, Options{Name: "suite", OnDrop: h.drops.add})
	if err != nil {
		h.t.Fatalf("open: %v", err)
	}
	h.t.Cleanup(func() { _ = b.Close() })
	return b
}

func msg(i int) sinks.Message {
	return sinks.Message{Value: fmt.Appendf(nil, `{"n":%d,"pad":"%0100d"}`, i, i)}
}

func valueN(t *testing.T, m sinks.Message) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscanf(string(m.Value), `{"n":%d,`, &n); err != nil {
		t.Fatalf("bad value %q: %v", m.Value, err)
	}
	return n
}

func appendN(t *testing.T, b Buffer, from, to int) []uint64 {
	t.Helper()
	var seqs []uint64
	for i := from; i < to; i++ {
		m := []sinks.Message{msg(i)}
		if err := b.Append(m...); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		seqs = append(seqs, m[0].Seq)
	}
	return seqs
}

// readAll reads until nothing arrives for 100ms, acking when ack is set.
func readAll(t *testing.T, b Buffer, ack bool) []sinks.Message {
	t.Helper()
	var out []sinks.Message
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		batch, err := b.ReadBatch(ctx, 64, 1<<20)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			return out
		}
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if ack {
			b.Ack(seqs(batch)...)
		}
		out = append(out, batch...)
	}
}

func seqs(ms []sinks.Message) []uint64 {
	s := make([]uint64, len(ms))
	for i := range ms {
		s[i] = ms[i].Seq
	}
	return s
}

func values(t *testing.T, ms []sinks.Message) []int {
	v := make([]int, len(ms))
	for i := range ms {
		v[i] = valueN(t, ms[i])
	}
	return v
}

func span(from, to int) []int {
	var v []int
	for i := from; i < to; i++ {
		v = append(v, i)
	}
	return v
}

func segFiles(t *testing.T, dir string) []string {
	t.Helper()
	f, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(f)
	return f
}

// RunSuite runs the shared Buffer cases against the buffer type typ.
func RunSuite(t *testing.T, typ string, durable bool) {
	newH := func(t *testing.T) *harness {
		return &harness{t: t, typ: typ, dir: filepath.Join(t.TempDir(), "spool"), drops: &drops{}}
	}

	t.Run("SeqsAndOrder", func(t *testing.T) {
		h := newH(t)
		b := h.open(h.cfg())
		s := appendN(t, b, 0, 10)
		for i := 1; i < len(s); i++ {
			if s[i] != s[i-1]+1 {
				t.Fatalf("seqs not consecutive: %v", s)
			}
		}
		ctx := context.Background()
		first, err := b.ReadBatch(ctx, 4, 1<<20)
		if err != nil || !slices.Equal(values(t, first), span(0, 4)) {
			t.Fatalf("first batch %v %v", values(t, first), err)
		}
		second, err := b.ReadBatch(ctx, 4, 1<<20)
		if err != nil || !slices.Equal(values(t, second), span(4, 8)) {
			t.Fatalf("second batch %v %v (in-flight messages must not come again)", values(t, second), err)
		}
		if b.Len() != 10 {
			t.Fatalf("Len %d, want 10 (in flight counts)", b.Len())
		}
	})

	t.Run("MaxBytesPerBatch", func(t *testing.T) {
		h := newH(t)
		b := h.open(h.cfg())
		appendN(t, b, 0, 10)
		one := len(msg(0).Value)
		batch, err := b.ReadBatch(context.Background(), 100, 3*one+1)
		if err != nil || len(batch) != 3 {
			t.Fatalf("got %d messages (%v), want 3 for 3 messages' bytes", len(batch), err)
		}
		batch, err = b.ReadBatch(context.Background(), 100, 1)
		if err != nil || len(batch) != 1 || valueN(t, batch[0]) != 3 {
			t.Fatalf("an oversized message must still come alone: %d %v", len(batch), err)
		}
	})

	t.Run("ReadBlocksUntilAppendOrCancel", func(t *testing.T) {
		h := newH(t)
		b := h.open(h.cfg())
		got := make(chan []sinks.Message, 1)
		go func() {
			m, _ := b.ReadBatch(context.Background(), 10, 1<<20)
			got <- m
		}()
		select {
		case <-got:
			t.Fatal("ReadBatch returned on an empty buffer")
		case <-time.After(50 * time.Millisecond):
		}
		appendN(t, b, 7, 8)
		select {
		case m := <-got:
			if !slices.Equal(values(t, m), []int{7}) {
				t.Fatalf("got %v", values(t, m))
			}
		case <-time.After(2 * time.Second):
			t.Fatal("ReadBatch did not wake on Append")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
		defer cancel()
		start := time.Now()
		if _, err := b.ReadBatch(ctx, 10, 1<<20); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("want deadline error, got %v", err)
		}
		if time.Since(start) > time.Second {
			t.Fatal("ReadBatch ignored ctx")
		}
	})

	t.Run("AckOutOfOrderAndNack", func(t *testing.T) {
		h := newH(t)
		b := h.open(h.cfg())
		appendN(t, b, 0, 5)
		batch, _ := b.ReadBatch(context.Background(), 10, 1<<20)
		b.Ack(batch[4].Seq, batch[2].Seq, batch[0].Seq, batch[0].Seq, 999999)
		if b.Len() != 2 {
			t.Fatalf("Len %d after 3 acks of 5, want 2", b.Len())
		}
		b.Nack(batch[3].Seq, batch[1].Seq)
		again := readAll(t, b, true)
		if !slices.Equal(values(t, again), []int{1, 3}) {
			t.Fatalf("re-read %v, want [1 3]", values(t, again))
		}
		if b.Len() != 0 || b.OldestAge() != 0 {
			t.Fatalf("Len %d OldestAge %v after acking all", b.Len(), b.OldestAge())
		}
		// Nacked messages come before new ones.
		appendN(t, b, 5, 8)
		batch, _ = b.ReadBatch(context.Background(), 1, 1<<20)
		b.Nack(batch[0].Seq)
		all := readAll(t, b, true)
		if !slices.Equal(values(t, all), []int{5, 6, 7}) {
			t.Fatalf("order after nack %v", values(t, all))
		}
	})

	t.Run("MetaRoundTrip", func(t *testing.T) {
		h := newH(t)
		b := h.open(h.cfg())
		in := sinks.Message{Key: []byte("host1"), Value: []byte(`{"a":"\u0000\n"}`), Meta: sinks.Meta{
			Node: "host1", Types: []string{"SYSCALL", "EXECVE"}, Keys: []string{"exec"},
			Techniques: []string{"T1059.004"}, Severity: 3, Kind: "alert",
		}}
		if err := b.Append(in); err != nil {
			t.Fatal(err)
		}
		out := readAll(t, b, true)
		if len(out) != 1 {
			t.Fatalf("got %d", len(out))
		}
		in.Seq = out[0].Seq
		if !reflect.DeepEqual(in, out[0]) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", out[0], in)
		}
	})

	t.Run("OldestAge", func(t *testing.T) {
		h := newH(t)
		b := h.open(h.cfg())
		if b.OldestAge() != 0 {
			t.Fatal("empty buffer has an age")
		}
		appendN(t, b, 0, 3)
		time.Sleep(30 * time.Millisecond)
		if a := b.OldestAge(); a < 30*time.Millisecond || a > 10*time.Second {
			t.Fatalf("OldestAge %v", a)
		}
		readAll(t, b, true)
		if b.OldestAge() != 0 {
			t.Fatalf("OldestAge %v after acking all", b.OldestAge())
		}
	})

	for _, policy := range []string{DropOldest, DropNewest} {
		t.Run("Full_"+policy, func(t *testing.T) {
			h := newH(t)
			cfg := h.cfg()
			cfg.MaxBytes = 16 << 10
			cfg.WhenFull = policy
			b := h.open(cfg)
			const n = 400 // ~50 KiB of messages into 16 KiB
			var appendErrs int
			for i := range n {
				if b.Append(msg(i)) != nil {
					appendErrs++
				}
				if b.Bytes() > cfg.MaxBytes {
					t.Fatalf("Bytes %d above max_bytes %d", b.Bytes(), cfg.MaxBytes)
				}
			}
			if l := b.Len(); l > 0 && l+h.drops.get(policy) != n {
				t.Fatalf("Len %d + dropped %d != appended %d", l, h.drops.get(policy), n)
			}
			got := values(t, readAll(t, b, true))
			if b.Len() != 0 {
				t.Fatalf("Len %d after reading and acking everything", b.Len())
			}
			dropped := h.drops.get(policy)
			if len(got)+dropped != n {
				t.Fatalf("delivered %d + dropped %d != appended %d", len(got), dropped, n)
			}
			if len(got) == 0 || dropped == 0 {
				t.Fatalf("delivered %d dropped %d: the limit did not bite", len(got), dropped)
			}
			if !slices.IsSorted(got) {
				t.Fatal("delivered out of order")
			}
			if policy == DropOldest && got[len(got)-1] != n-1 {
				t.Fatalf("drop_oldest lost the newest message: last %d", got[len(got)-1])
			}
			if policy == DropNewest {
				if !slices.Equal(got, span(0, len(got))) {
					t.Fatalf("drop_newest must keep the first messages: %v", got)
				}
				if appendErrs != dropped {
					t.Fatalf("append errors %d, drops %d", appendErrs, dropped)
				}
			}
		})
	}

	t.Run("Full_block", func(t *testing.T) {
		h := newH(t)
		cfg := h.cfg()
		cfg.MaxBytes = 16 << 10
		cfg.WhenFull = Block
		b := h.open(cfg)
		const n = 400
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := range n {
				if err := b.Append(msg(i)); err != nil {
					t.Errorf("append %d: %v", i, err)
					return
				}
			}
		}()
		select {
		case <-done:
			t.Fatal("400 messages fit in 16 KiB without blocking")
		case <-time.After(100 * time.Millisecond):
		}
		var got []int
		for len(got) < n {
			batch, err := b.ReadBatch(context.Background(), 16, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			b.Ack(seqs(batch)...)
			got = append(got, values(t, batch)...)
		}
		<-done
		if !slices.Equal(got, span(0, n)) {
			t.Fatal("block lost or reordered messages")
		}
		if h.drops.m != nil {
			t.Fatalf("block dropped: %v", h.drops.m)
		}
	})

	t.Run("BlockedAppendEndsOnClose", func(t *testing.T) {
		h := newH(t)
		cfg := h.cfg()
		cfg.MaxBytes = 8 << 10
		cfg.WhenFull = Block
		b := h.open(cfg)
		errc := make(chan error, 1)
		go func() {
			var err error
			for i := 0; err == nil; i++ {
				err = b.Append(msg(i))
			}
			errc <- err
		}()
		time.Sleep(50 * time.Millisecond)
		b.Close()
		select {
		case err := <-errc:
			if !errors.Is(err, ErrClosed) {
				t.Fatalf("got %v", err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("Append stayed blocked after Close")
		}
		if n := h.drops.total(ReasonShutdown); n != 0 {
			t.Fatalf("the buffer reported %d drops for the append Close ended; the caller counts it", n)
		}
	})

	t.Run("MaxEvents", func(t *testing.T) {
		h := newH(t)
		cfg := h.cfg()
		cfg.MaxEvents = 10
		cfg.WhenFull = DropNewest
		b := h.open(cfg)
		for i := range 15 {
			b.Append(msg(i))
		}
		if b.Len() != 10 || h.drops.get(ReasonDropNewest) != 5 {
			t.Fatalf("Len %d drops %d, want 10 and 5", b.Len(), h.drops.get(ReasonDropNewest))
		}
	})

	t.Run("TooLarge", func(t *testing.T) {
		h := newH(t)
		cfg := h.cfg()
		cfg.MaxBytes = 8 << 10
		b := h.open(cfg)
		if err := b.Append(sinks.Message{Value: make([]byte, 9<<10)}); err == nil {
			t.Fatal("no error for a message larger than the buffer")
		}
		if h.drops.get(ReasonTooLarge) != 1 {
			t.Fatalf("too_large drops %d", h.drops.get(ReasonTooLarge))
		}
		if b.Len() != 0 {
			t.Fatal("oversized message was queued")
		}
	})

	t.Run("CloseCountsWhatIsLost", func(t *testing.T) {
		h := newH(t)
		b := h.open(h.cfg())
		appendN(t, b, 0, 10)
		if _, err := b.ReadBatch(context.Background(), 3, 1<<20); err != nil {
			t.Fatal(err)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		want := 10 // memory: everything not acknowledged, in flight included
		if durable {
			want = 0 // kept for the next open
		}
		if got := h.drops.get(ReasonShutdown); got != want || h.drops.total(ReasonShutdown) != 0 {
			t.Fatalf("Close reported %d shutdown drops (%d of other reasons), want %d", got, h.drops.total(ReasonShutdown), want)
		}
		if !durable && (b.Len() != 0 || b.Bytes() != 0) {
			t.Fatalf("after Close: Len %d Bytes %d, want 0 and 0", b.Len(), b.Bytes())
		}
		if n := b.Ack(0, 1, 2); n != 0 {
			t.Fatalf("Ack after Close removed %d", n)
		}
	})

	t.Run("Closed", func(t *testing.T) {
		h := newH(t)
		b := h.open(h.cfg())
		b.Close()
		if err := b.Append(msg(1), msg(2)); !errors.Is(err, ErrClosed) {
			t.Fatalf("append after close: %v", err)
		}
		if n := h.drops.total(""); n != 0 {
			t.Fatalf("the buffer reported %d drops for appends after Close; the caller counts them", n)
		}
		if _, err := b.ReadBatch(context.Background(), 1, 1); !errors.Is(err, ErrClosed) {
			t.Fatalf("read after close: %v", err)
		}
		b.Ack(1)
		b.Nack(1)
		if err := b.Close(); err != nil {
			t.Fatalf("second close: %v", err)
		}
	})

	t.Run("ConcurrentProducerConsumer", func(t *testing.T) {
		h := newH(t)
		cfg := h.cfg()
		cfg.MaxBytes = 64 << 20
		cfg.MaxEvents = 1 << 20
		b := h.open(cfg)
		const n = 5000
		go func() {
			for i := 0; i < n; i += 5 {
				ms := []sinks.Message{msg(i), msg(i + 1), msg(i + 2), msg(i + 3), msg(i + 4)}
				if err := b.Append(ms...); err != nil {
					t.Errorf("append: %v", err)
					return
				}
			}
		}()
		acked := map[int]int{}
		deadline := time.Now().Add(20 * time.Second)
		for len(acked) < n && time.Now().Before(deadline) {
			batch, err := b.ReadBatch(context.Background(), 37, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range batch {
				if rand.IntN(10) == 0 {
					b.Nack(m.Seq)
					continue
				}
				b.Ack(m.Seq)
				acked[valueN(t, m)]++
			}
		}
		for i := range n {
			if acked[i] != 1 {
				t.Fatalf("message %d acked %d times", i, acked[i])
			}
		}
		if b.Len() != 0 {
			t.Fatalf("Len %d at the end", b.Len())
		}
	})

	if !durable {
		return
	}

	t.Run("ReopenAfterClose", func(t *testing.T) {
		h := newH(t)
		b := h.open(h.cfg())
		appendN(t, b, 0, 100)
		batch, _ := b.ReadBatch(context.Background(), 30, 1<<20)
		b.Ack(seqs(batch[:20])...) // 20 acked, 10 in flight and never acked
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		b = h.open(h.cfg())
		if b.Len() != 80 {
			t.Fatalf("Len %d after reopen, want 80", b.Len())
		}
		if got := values(t, readAll(t, b, true)); !slices.Equal(got, span(20, 100)) {
			t.Fatalf("after reopen got %v, want 20..99", got)
		}
		s := appendN(t, b, 100, 101)
		if s[0] < 100 {
			t.Fatalf("seq %d reused after reopen", s[0])
		}
	})

	t.Run("ReopenAfterCrash", func(t *testing.T) {
		h := newH(t)
		b := h.open(h.cfg())
		appendN(t, b, 0, 100)
		batch, _ := b.ReadBatch(context.Background(), 30, 1<<20)
		b.Ack(seqs(batch[:20])...)
		waitMarker(t, h.dir, seqs(batch[:20])) // the sync loop wrote them
		b.Ack(seqs(batch[20:25])...)           // may or may not reach the marker
		appendN(t, b, 100, 110)                // written, maybe not synced
		crash(b)
		b = h.open(h.cfg())
		got := values(t, readAll(t, b, true))
		if !slices.IsSorted(got) || len(got) < 85 || len(got) > 90 {
			t.Fatalf("after crash got %d messages %v; want 25..109 plus at most the 5 acks not yet synced", len(got), got)
		}
		if !slices.Equal(got[len(got)-85:], span(25, 110)) {
			t.Fatalf("lost messages across a crash: %v", got)
		}
		if got[0] < 20 {
			t.Fatalf("synced acks came back: %v", got[:5])
		}
	})

	t.Run("SeqsNeverReused", func(t *testing.T) {
		h := newH(t)
		cfg := h.cfg()
		cfg.MaxBytes = 16 << 10 // small segments, so finished ones are deleted
		b := h.open(cfg)
		s1 := appendN(t, b, 0, 200)
		readAll(t, b, true)
		crash(b)
		b = h.open(cfg)
		s2 := appendN(t, b, 200, 201)
		if s2[0] <= s1[len(s1)-1] {
			t.Fatalf("seq %d after %d", s2[0], s1[len(s1)-1])
		}
		if files := segFiles(t, h.dir); len(files) > 2 {
			t.Fatalf("%d segment files kept after acking everything", len(files))
		}
	})

	t.Run("TornTail", func(t *testing.T) {
		h := newH(t)
		b := h.open(h.cfg())
		appendN(t, b, 0, 50)
		crash(b)
		files := segFiles(t, h.dir)
		last := files[len(files)-1]
		st, _ := os.Stat(last)
		if err := os.Truncate(last, st.Size()-7); err != nil {
			t.Fatal(err)
		}
		b = h.open(h.cfg())
		if h.drops.get(ReasonTornTail) != 1 {
			t.Fatalf("torn_tail drops %d", h.drops.get(ReasonTornTail))
		}
		appendN(t, b, 50, 52) // appends continue after the cut
		if got := values(t, readAll(t, b, false)); !slices.Equal(got, append(span(0, 49), 50, 51)) {
			t.Fatalf("got %v", got)
		}
		b.Close()
		b = h.open(h.cfg())
		if h.drops.get(ReasonTornTail) != 1 || h.drops.get(ReasonCorrupt) != 0 {
			t.Fatalf("clean reopen reported drops %v", h.drops.m)
		}
		if b.Len() != 51 {
			t.Fatalf("Len %d", b.Len())
		}
	})

	t.Run("ZeroTail", func(t *testing.T) {
		h := newH(t)
		b := h.open(h.cfg())
		appendN(t, b, 0, 10)
		crash(b)
		files := segFiles(t, h.dir)
		f, _ := os.OpenFile(files[len(files)-1], os.O_WRONLY|os.O_APPEND, 0)
		f.Write(make([]byte, 4096)) // size grew, data never written
		f.Close()
		b = h.open(h.cfg())
		if h.drops.get(ReasonTornTail) != 1 {
			t.Fatalf("drops %v", h.drops.m)
		}
		if got := values(t, readAll(t, b, false)); !slices.Equal(got, span(0, 10)) {
			t.Fatalf("got %v", got)
		}
	})

	for _, damage := range []string{"flip", "zero_length"} {
		t.Run("Corrupt_"+damage, func(t *testing.T) {
			h := newH(t)
			b := h.open(h.cfg())
			appendN(t, b, 0, 50)
			b.Close()
			file := segFiles(t, h.dir)[0]
			data, _ := os.ReadFile(file)
			rec := len(segMagic) // walk to the start of record 20
			for range 20 {
				rec += recHeader + int(le32(data[rec:]))
			}
			switch damage {
			case "flip":
				data[rec+recHeader+10] ^= 0x40
			case "zero_length":
				copy(data[rec:rec+4], []byte{0, 0, 0, 0})
			}
			os.WriteFile(file, data, 0o600)
			b = h.open(h.cfg())
			if h.drops.get(ReasonCorrupt) != 1 {
				t.Fatalf("drops %v", h.drops.m)
			}
			want := append(span(0, 20), span(21, 50)...)
			if got := values(t, readAll(t, b, true)); !slices.Equal(got, want) {
				t.Fatalf("got %v", got)
			}
			if h.drops.get(ReasonCorrupt) != 1 {
				t.Fatalf("the damage was counted again while reading: %v", h.drops.m)
			}
		})
	}

	t.Run("DamagedMarkerMeansResend", func(t *testing.T) {
		h := newH(t)
		b := h.open(h.cfg())
		appendN(t, b, 0, 10)
		batch, _ := b.ReadBatch(context.Background(), 5, 1<<20)
		b.Ack(seqs(batch)...)
		b.Close()
		marker := filepath.Join(h.dir, "acks")
		data, _ := os.ReadFile(marker)
		data[len(data)-1] ^= 1
		os.WriteFile(marker, data, 0o600)
		b = h.open(h.cfg())
		if got := values(t, readAll(t, b, true)); !slices.Equal(got, span(0, 10)) {
			t.Fatalf("got %v, want everything again", got)
		}
	})

	t.Run("ExclusiveDir", func(t *testing.T) {
		h := newH(t)
		h.open(h.cfg())
		if b, err := Open(h.cfg(), Options{}); err == nil {
			b.Close()
			t.Fatal("a second Open of the same dir succeeded")
		}
	})

	t.Run("FsyncGrouping", func(t *testing.T) {
		h := newH(t)
		cfg := h.cfg()
		cfg.FsyncInterval = 100 * time.Millisecond
		cfg.FsyncBytes = 1 << 30
		b := h.open(cfg)
		d := b.(*disk)
		start, t0 := d.fsyncs.Load(), time.Now()
		for i := range 2000 {
			b.Append(msg(i))
		}
		time.Sleep(250 * time.Millisecond)
		n := d.fsyncs.Load() - start
		// Grouped syncs follow the clock, not the appends (2000 ungrouped
		// syncs would be one per append): about one per interval elapsed,
		// and the appends take longer under -race or on a busy machine. The
		// slack of 6 is what the bound of 8 in 250 ms allowed.
		el := time.Since(t0)
		if most := uint64(el/cfg.FsyncInterval) + 6; n == 0 || n > most {
			t.Fatalf("%d syncs for 2000 appends in %s at a 100ms interval, want 1 to %d", n, el, most)
		}
	})
}

// waitMarker waits until the ack marker in dir holds every seq of acked:
// a sync of the loop (every FsyncInterval, each taking a while on a busy
// disk) has made them durable.
func waitMarker(t *testing.T, dir string, acked []uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "acks")); err == nil {
			if _, acks, err := decodeMarker(b); err == nil && !slices.ContainsFunc(acked, func(s uint64) bool { return !acks.contains(s) }) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the marker in %s never held the acks %v", dir, acked)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
