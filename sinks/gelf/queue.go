package gelf

// datagramQueue holds the datagrams of the messages of one Write that
// are not sent yet, in one byte slice, with where each message ends, so
// that after a partial send it can tell which messages went out whole.
// Its memory is reused from one Write to the next.
type datagramQueue struct {
	buf  []byte   // the datagrams, back to back
	ends []int    // end offset in buf of each datagram
	msgs []msgEnd // one per queued message, in order
	out  [][]byte // datagrams() result, reused
}

// msgEnd is where a queued message's datagrams end: the number of
// datagrams queued up to and including it, and whether it was chunked.
type msgEnd struct {
	datagrams int
	chunked   bool
}

func (q *datagramQueue) reset() {
	q.buf, q.ends, q.msgs = q.buf[:0], q.ends[:0], q.msgs[:0]
}

// add queues one datagram made of the concatenation of parts.
func (q *datagramQueue) add(parts ...[]byte) {
	for _, p := range parts {
		q.buf = append(q.buf, p...)
	}
	q.ends = append(q.ends, len(q.buf))
}

// endMessage marks the datagrams added since the previous call as one
// message (none: a message that sends nothing).
func (q *datagramQueue) endMessage(chunked bool) {
	q.msgs = append(q.msgs, msgEnd{datagrams: len(q.ends), chunked: chunked})
}

// count is the number of queued datagrams.
func (q *datagramQueue) count() int { return len(q.ends) }

// datagrams returns the queued datagrams, valid until the next add or
// reset.
func (q *datagramQueue) datagrams() [][]byte {
	q.out = q.out[:0]
	start := 0
	for _, end := range q.ends {
		q.out = append(q.out, q.buf[start:end:end])
		start = end
	}
	return q.out
}

// sent reports, for the first n queued datagrams sent, how many queued
// messages went out whole, and the bytes and chunk datagrams among the n.
func (q *datagramQueue) sent(n int) (msgs, bytes, chunks int) {
	if n > 0 {
		bytes = q.ends[n-1]
	}
	prev := 0
	for _, m := range q.msgs { // datagrams only grows: whole messages are a prefix
		if m.chunked {
			chunks += max(0, min(m.datagrams, n)-prev)
		}
		if m.datagrams <= n {
			msgs++
		}
		prev = m.datagrams
	}
	return msgs, bytes, chunks
}
