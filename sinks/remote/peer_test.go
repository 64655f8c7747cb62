package remote

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/sinks"
)

// scriptedPeer is the server side of the managed protocol with replies a
// real auditd sends only in rare failure cases (a reply with the wrong
// sequence, an unsolicited ENDING), to test the client's reaction. The
// normal protocol is tested against a real auditd in remote_test.go.
type scriptedPeer struct {
	l     net.Listener
	mu    sync.Mutex
	conns [][]frame
	// reply decides the reply to frame n (counted over all connections)
	// of connection c: its type and sequence, and whether to send ENDING
	// right after it.
	reply func(n, c int, f frame) (typ uint32, seq uint32, ending bool)
}

type frame struct {
	h       Header
	payload string
}

func startPeer(t *testing.T, reply func(n, c int, f frame) (uint32, uint32, bool)) *scriptedPeer {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &scriptedPeer{l: l, reply: reply}
	t.Cleanup(func() { l.Close() })
	go func() {
		n := 0
		for c := 0; ; c++ {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conns = append(p.conns, nil)
			p.mu.Unlock()
			go func(c int, conn net.Conn) {
				defer conn.Close()
				var hb [HeaderSize]byte
				for {
					if _, err := io.ReadFull(conn, hb[:]); err != nil {
						return
					}
					h, err := DecodeHeader(hb[:])
					if err != nil {
						t.Errorf("peer: %v", err)
						return
					}
					body := make([]byte, h.Length)
					if _, err := io.ReadFull(conn, body); err != nil {
						return
					}
					f := frame{h, string(body)}
					p.mu.Lock()
					p.conns[c] = append(p.conns[c], f)
					n++
					typ, seq, ending := p.reply(n, c, f)
					p.mu.Unlock()
					conn.Write(Header{Type: typ, Seq: seq}.Append(nil))
					if ending {
						conn.Write(Header{Type: TypeEnding}.Append(nil))
						return
					}
				}
			}(c, conn)
		}
	}()
	return p
}

func (p *scriptedPeer) frames() [][]frame {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([][]frame, len(p.conns))
	for i := range p.conns {
		out[i] = append([]frame(nil), p.conns[i]...)
	}
	return out
}

// TestMismatchResumeEnding: a reply with the wrong sequence makes the sink
// reconnect and resend that line (not the lines of the message already
// acknowledged); an ENDING received while idle makes the next write
// reconnect after the backoff.
func TestMismatchResumeEnding(t *testing.T) {
	p := startPeer(t, func(n, c int, f frame) (uint32, uint32, bool) {
		switch n {
		case 2:
			return TypeAck, f.h.Seq + 7, false // wrong sequence
		case 4:
			return TypeAck, f.h.Seq, true // then ENDING
		}
		return TypeAck, f.h.Seq, false
	})
	s, err := New("peer", Config{Address: p.l.Addr().String(), AckTimeout: time.Second, BackoffMin: 100 * time.Millisecond, BackoffMax: 100 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	ctx := context.Background()
	a := sinks.Message{Seq: 7, Value: []byte("type=SYSCALL msg=audit(1.000:1): a=1\nnode=x type=EOE msg=audit(1.000:1): \ntype=PATH msg=audit(1.000:1): b=2\n")}
	b := sinks.Message{Seq: 8, Value: []byte("type=USER msg=audit(1.000:2): c=3")}
	if err := s.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	err = s.Write(ctx, []sinks.Message{a, b})
	if !errors.Is(err, sinks.ErrNotConnected) || s.m.mismatch.Value() != 1 {
		t.Fatalf("after a mismatched reply: %v (mismatches %d), want ErrNotConnected", err, s.m.mismatch.Value())
	}
	if err := s.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, []sinks.Message{a, b}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // ENDING arrives while idle
	c := sinks.Message{Seq: 9, Value: []byte("type=USER msg=audit(1.000:3): d=4\n")}
	if err := s.Write(ctx, []sinks.Message{c}); !errors.Is(err, errEnding) || s.m.ending.Value() != 1 {
		t.Fatalf("write after ENDING: %v, want errEnding", err)
	}
	start := time.Now()
	if err := s.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < 50*time.Millisecond {
		t.Errorf("reconnect after ENDING waited %v, want the backoff (≥ 50ms)", waited)
	}
	if err := s.Write(ctx, []sinks.Message{c}); err != nil {
		t.Fatal(err)
	}
	want := [][]struct {
		seq     uint32
		payload string
	}{
		{{2, "type=SYSCALL msg=audit(1.000:1): a=1\n"}, {3, "type=PATH msg=audit(1.000:1): b=2\n"}},
		{{4, "type=PATH msg=audit(1.000:1): b=2\n"}, {5, "type=USER msg=audit(1.000:2): c=3\n"}},
		{{6, "type=USER msg=audit(1.000:3): d=4\n"}},
	}
	got := p.frames()
	if len(got) != len(want) {
		t.Fatalf("connections: got %d, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if len(got[i]) != len(want[i]) {
			t.Fatalf("connection %d: got %+v", i, got[i])
		}
		for j, w := range want[i] {
			f := got[i][j]
			if f.h.Seq != w.seq || f.payload != w.payload || f.h.Type != TypeMessage || int(f.h.Length) != len(w.payload) {
				t.Errorf("connection %d frame %d: got %+v, want seq %d %q", i, j, f, w.seq, w.payload)
			}
		}
	}
}

func TestPayloads(t *testing.T) {
	s, err := New("payloads", Config{Address: "127.0.0.1:1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	long := "type=EXECVE msg=audit(1.000:1): argc=1 " + strings.Repeat("a0=\"x\" ", 2000)
	got := s.payloads([]byte("type=EOE msg=audit(1.000:1):\r\n\n" + "type=X msg=audit(1.000:1): a=\x00\x01\t" + gs + "B=1\r\n" + long))
	if len(got) != 2 {
		t.Fatalf("got %d payloads", len(got))
	}
	if string(got[0]) != "type=X msg=audit(1.000:1): a=??\t"+gs+"B=1\n" {
		t.Errorf("sanitized line: %q", got[0])
	}
	l := string(got[1])
	if len(l) > MaxMessageLength || l[len(l)-1] != '\n' || l[len(l)-len(truncMark)-1:len(l)-1] != truncMark || l[len(l)-len(truncMark)-2] != '"' {
		t.Errorf("long line: %d bytes, ends %q", len(l), l[len(l)-40:])
	}
}
