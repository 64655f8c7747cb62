package main

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/sinks"
	"github.com/audisp-enrich/audisp-enrich/sinks/gelf"
)

// TestCountsWhatTheSinkSends: every message the real GELF sink sends
// (whole datagrams plain and gzip, chunked with each compression, one
// message truncated to 128 chunks) counts once, nothing is bad or left
// incomplete; then broken datagrams each count as bad and not as a
// message.
func TestCountsWhatTheSinkSends(t *testing.T) {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetReadBuffer(8 << 20)
	var batch []sinks.Message
	for i := range 40 {
		// From 20 bytes to ~40 KB: whole datagrams and up to 30 chunks of 1420.
		doc := fmt.Sprintf(`{"event":{"action":"execve","n":%d},"x":%q}`, i, strings.Repeat(fmt.Sprint(i), i*i*13))
		batch = append(batch, sinks.Message{Value: []byte(doc)})
	}
	c := newCounter()
	want := int64(0)
	buf := make([]byte, 65536)
	for _, cfg := range []gelf.Config{
		{Compression: "auto"}, {Compression: "gzip"}, {Compression: "zlib"}, {Compression: "none"},
		{Compression: "none", ChunkSize: 200},
	} {
		cfg.Address = conn.LocalAddr().String()
		s, err := gelf.New("gelfcount-"+cfg.Compression, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		if err := s.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		for i := range batch { // one at a time: the socket buffer never overflows
			if err := s.Write(ctx, batch[i:i+1]); err != nil {
				t.Fatal(err)
			}
			want++
			for c.messages < want {
				_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				n, err := conn.Read(buf)
				if err != nil {
					t.Fatalf("%+v message %d: %v (counted %d of %d, bad %d)", cfg, i, err, c.messages, want, c.bad)
				}
				c.datagram(buf[:n])
				if c.bad > 0 {
					t.Fatalf("%+v message %d: datagram %x... counted bad", cfg, i, buf[:min(n, 16)])
				}
			}
		}
		_ = s.Close(ctx)
	}
	if len(c.pending) != 0 || c.messages != want {
		t.Fatalf("%d messages, %d incomplete; want %d, 0", c.messages, len(c.pending), want)
	}
	chunk := func(id, seq, count byte, data string) []byte {
		return append([]byte{0x1e, 0x0f, 0, 0, 0, 0, 0, 0, 0, id, seq, count}, data...)
	}
	for _, d := range [][]byte{
		[]byte(`{"version":"1.1","short_message":"cut`), // cut JSON
		[]byte("plain text"),
		{0x1f, 0x8b, 8}, // gzip header only
		chunk(1, 0, 2, ""),
		chunk(2, 0, 0, "{"),
		chunk(3, 2, 2, "{"),
		chunk(4, 0, 129, "{"),
		chunk(5, 0, 2, "not a message"),
	} {
		before := c.bad
		c.datagram(d)
		if c.bad != before+1 || c.messages != want {
			t.Errorf("datagram %q: bad %d -> %d, messages %d; want one bad, no message", d, before, c.bad, c.messages)
		}
	}
	// A duplicate chunk and a chunk whose count disagrees are bad; the
	// message completes with its own chunks only.
	c.datagram(chunk(6, 0, 2, `{"a":`))
	c.datagram(chunk(6, 0, 2, `{"a":`))
	c.datagram(chunk(6, 1, 3, "}"))
	c.datagram(chunk(6, 1, 2, "}"))
	if c.messages != want+1 || c.bad != 8+2 || len(c.pending) != 0 {
		t.Errorf("duplicate and disagreeing chunks: messages %d bad %d pending %d; want %d, 10, 0", c.messages, c.bad, len(c.pending), want+1)
	}
}

// FuzzDatagram: any datagram counts as exactly one of message, bad, or a
// chunk now pending, and never panics.
func FuzzDatagram(f *testing.F) {
	f.Add([]byte(`{"version":"1.1"}`))
	f.Add([]byte{0x1e, 0x0f, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, '{', '}'})
	f.Add([]byte{0x1e, 0x0f, 1, 2, 3, 4, 5, 6, 7, 8, 0, 2, 0x1f, 0x8b})
	f.Add([]byte{0x78, 0x9c, 1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, b []byte) {
		c := newCounter()
		c.datagram(b)
		if c.messages+c.bad+int64(len(c.pending)) != 1 {
			t.Fatalf("%x: messages %d bad %d pending %d", b, c.messages, c.bad, len(c.pending))
		}
	})
}
