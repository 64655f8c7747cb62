package gelf

import "testing"

// TestQueueSent: after a partial send, only the messages whose datagrams
// all went out count as sent; a message that sends nothing (a dropped
// document) counts once everything before it went out; bytes and chunks
// count what was sent.
func TestQueueSent(t *testing.T) {
	var q datagramQueue
	q.add([]byte("aaaa")) // message 0: one datagram
	q.endMessage(false)
	q.add([]byte("hd"), []byte("b1")) // message 1: three chunks
	q.add([]byte("hd"), []byte("b2"))
	q.add([]byte("hd"), []byte("b3"))
	q.endMessage(true)
	q.endMessage(false) // message 2: dropped, nothing queued
	q.add([]byte("cc")) // message 3
	q.endMessage(false)
	if q.count() != 5 {
		t.Fatalf("count %d, want 5", q.count())
	}
	d := q.datagrams()
	if len(d) != 5 || string(d[0]) != "aaaa" || string(d[2]) != "hdb2" || string(d[4]) != "cc" {
		t.Fatalf("datagrams %q", d)
	}
	for _, c := range []struct{ n, msgs, bytes, chunks int }{
		{0, 0, 0, 0},
		{1, 1, 4, 0},
		{2, 1, 8, 1},
		{3, 1, 12, 2},
		{4, 3, 16, 3},
		{5, 4, 18, 3},
	} {
		msgs, bytes, chunks := q.sent(c.n)
		if msgs != c.msgs || bytes != c.bytes || chunks != c.chunks {
			t.Errorf("sent(%d) = %d messages, %d bytes, %d chunks; want %d, %d, %d", c.n, msgs, bytes, chunks, c.msgs, c.bytes, c.chunks)
		}
	}
	q.reset()
	if q.count() != 0 || len(q.datagrams()) != 0 {
		t.Errorf("reset left %d datagrams", q.count())
	}
}
