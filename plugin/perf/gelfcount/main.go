// Command gelfcount is the GELF UDP receiver of BenchmarkReplayGELF
// (plugin/gelf_bench_test.go). It runs as its own process, so that the
// benchmark's process holds only the pipeline under test, and counts
// complete GELF messages exactly without decoding them:
//
//	gelfcount
//
// It listens on 127.0.0.1 (a free port) with a 64 MiB receive buffer,
// prints "ADDR\n" on stdout, and then answers each line read on stdin with
// one line of totals since it started:
//
//	messages=N bad=N incomplete=N last=UNIXNANO
//
// messages counts complete messages (a whole datagram, or the last missing
// chunk of a chunked one); bad counts datagrams that are neither (see
// counter.datagram); incomplete is the chunked messages still missing
// chunks; last is when the latest datagram arrived. It exits at the end of
// stdin.
package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gelfcount:", err)
		os.Exit(1)
	}
}

func run() error {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return err
	}
	defer conn.Close()
	// SO_RCVBUFFORCE needs root; else the rmem_max cap applies and the
	// kernel may drop datagrams (they then show as lost).
	_ = conn.SetReadBuffer(64 << 20)
	if rc, err := conn.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, 64<<20)
		})
	}
	var mu sync.Mutex
	c := newCounter()
	go func() {
		// recvmmsg(2), 64 datagrams a call.
		pc := ipv4.NewPacketConn(conn)
		ms := make([]ipv4.Message, 64)
		for i := range ms {
			ms[i].Buffers = [][]byte{make([]byte, 65536)}
		}
		for {
			n, err := pc.ReadBatch(ms, 0)
			if err != nil {
				return
			}
			now := time.Now().UnixNano()
			mu.Lock()
			for _, m := range ms[:n] {
				c.datagram(m.Buffers[0][:m.N])
			}
			c.last = now
			mu.Unlock()
		}
	}()
	fmt.Println(conn.LocalAddr().String())
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		mu.Lock()
		fmt.Printf("messages=%d bad=%d incomplete=%d last=%d\n", c.messages, c.bad, len(c.pending), c.last)
		mu.Unlock()
	}
	return in.Err()
}

// counter counts GELF messages from datagrams. Not safe for concurrent use.
type counter struct {
	messages, bad int64
	last          int64
	pending       map[uint64]*chunked
}

// chunked is a chunked message not yet complete.
type chunked struct {
	count uint8
	have  [2]uint64 // chunk sequence numbers seen (at most 128)
	n     int
}

func newCounter() *counter { return &counter{pending: map[uint64]*chunked{}} }

// GELF chunking (GELF 1.1): magic 0x1e 0x0f, 8-byte message id, sequence
// number, sequence count (1..128), then data.
const (
	chunkHeader = 12
	maxChunks   = 128
)

// datagram counts one datagram. A whole message must be a JSON object
// ('{' ... '}'), or start with the gzip magic or a zlib header. A chunk
// must have a whole header, a count of 1..128 that agrees with the
// message's other chunks, a sequence number below it and not seen before,
// and data; the first chunk's data must start like a whole message. Any
// other datagram is bad.
func (c *counter) datagram(b []byte) {
	if len(b) >= 2 && b[0] == 0x1e && b[1] == 0x0f {
		c.chunk(b)
		return
	}
	if !messageStart(b) || (b[0] == '{' && b[len(b)-1] != '}') {
		c.bad++
		return
	}
	c.messages++
}

func (c *counter) chunk(b []byte) {
	if len(b) <= chunkHeader {
		c.bad++
		return
	}
	var id uint64
	for _, x := range b[2:10] {
		id = id<<8 | uint64(x)
	}
	seq, count := b[10], b[11]
	if count == 0 || count > maxChunks || seq >= count || (seq == 0 && !messageStart(b[chunkHeader:])) {
		c.bad++
		return
	}
	m := c.pending[id]
	if m == nil {
		m = &chunked{count: count}
		c.pending[id] = m
	}
	bit := uint64(1) << (seq % 64)
	if m.count != count || m.have[seq/64]&bit != 0 {
		c.bad++
		return
	}
	m.have[seq/64] |= bit
	if m.n++; m.n == int(count) {
		delete(c.pending, id)
		c.messages++
	}
}

// messageStart reports whether b starts like a GELF message: a JSON
// object, gzip or zlib.
func messageStart(b []byte) bool {
	switch {
	case len(b) >= 2 && b[0] == '{':
		return true
	case len(b) >= 18 && b[0] == 0x1f && b[1] == 0x8b:
		return true
	case len(b) >= 6 && b[0]&0x0f == 8 && (int(b[0])<<8|int(b[1]))%31 == 0:
		return true
	}
	return false
}
