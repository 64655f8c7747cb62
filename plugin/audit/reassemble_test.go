package audit

import (
	"fmt"
	"testing"
	"time"
)

// rec builds a record line for the reassembler tests.
func rec(t *testing.T, p *Parser, node, typ string, sec int64, msec, serial int) *Record {
	t.Helper()
	l := fmt.Sprintf("type=%s msg=audit(%d.%03d:%d): a=1", typ, sec, msec, serial)
	if typ == "EOE" {
		l = fmt.Sprintf("type=EOE msg=audit(%d.%03d:%d): ", sec, msec, serial)
	}
	if node != "" {
		l = "node=" + node + " " + l
	}
	r, err := p.Parse(l)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

type collector struct{ evs []*Event }

func (c *collector) emit(ev *Event) { c.evs = append(c.evs, ev) }

func types(ev *Event) string {
	s := ""
	for i, r := range ev.Records {
		if i > 0 {
			s += ","
		}
		s += r.Type
	}
	return s
}

// TestReassembleClose checks which record types end an event by
// themselves (auparse's audit_is_last_record) and which wait for EOE: a
// lone record of a last type is held until a record stamped DefaultHold
// later arrives (replay), the others stay open.
func TestReassembleClose(t *testing.T) {
	cases := []struct {
		typ    string
		closes bool
	}{
		{"PROCTITLE", true}, {"EOE", false /* EOE alone is stray */},
		{"USER", true}, {"USER_AUTH", true}, {"CRED_REFR", true}, {"USER_TTY", true},
		{"DAEMON_START", true}, {"DAEMON_END", true}, {"KERNEL", true},
		{"ANOM_LOGIN_FAILURES", true}, {"VIRT_CONTROL", true}, {"MAC_UNLBL_ALLOW", true}, {"MAC_CALIPSO_DEL", true},
		{"UNKNOWN[2999]", true}, {"UNKNOWN[1250]", true},
		{"LOGIN", false}, {"SYSCALL", false}, {"EXECVE", false}, {"PATH", false}, {"CWD", false}, {"AVC", false},
		{"INTEGRITY_DATA", false}, {"INTEGRITY_PCR", false}, {"INTEGRITY_RULE", false}, {"INTEGRITY_POLICY_RULE", false},
		{"UNKNOWN[1420]", false}, {"MAC_STATUS", false}, {"ANOM_ABEND", false}, {"NETFILTER_CFG", false},
	}
	for _, c := range cases {
		var p Parser
		var col collector
		r := NewReassembler(ReassemblerConfig{StreamTime: true}, col.emit)
		r.Push(rec(t, &p, "", c.typ, 100, 0, 1))
		if len(col.evs) != 0 {
			t.Errorf("%s: emitted before any later record", c.typ)
		}
		r.Push(rec(t, &p, "", "SYSCALL", 100, 49, 2)) // 49 ms later: the hold goes on
		if len(col.evs) != 0 {
			t.Errorf("%s: emitted before the hold ended", c.typ)
		}
		r.Push(rec(t, &p, "", "SYSCALL", 100, 50, 3))
		if got := len(col.evs) == 1; got != c.closes {
			t.Errorf("%s: closed=%v, want %v", c.typ, got, c.closes)
		}
		if c.closes && len(col.evs) == 1 && col.evs[0].TimedOut {
			t.Errorf("%s: closed by type but flagged timed_out", c.typ)
		}
	}
}

func TestReassembleEOEAndOrder(t *testing.T) {
	var p Parser
	var col collector
	r := NewReassembler(ReassemblerConfig{StreamTime: true}, col.emit)
	// INTEGRITY_RULE + SYSCALL + EXECVE + CWD + PATH + PROCTITLE + EOE:
	// PROCTITLE would end it (no EOE seen yet), EOE ends it first.
	for _, typ := range []string{"INTEGRITY_RULE", "SYSCALL", "EXECVE", "CWD", "PATH", "PROCTITLE", "EOE"} {
		r.Push(rec(t, &p, "", typ, 100, 5, 13))
	}
	// LOGIN shares its serial with SYSCALL; EOE closes.
	for _, typ := range []string{"LOGIN", "SYSCALL", "EOE"} {
		r.Push(rec(t, &p, "", typ, 101, 0, 14))
	}
	// interleaved events close independently; EOE is not kept
	r.Push(rec(t, &p, "", "SYSCALL", 102, 0, 20))
	r.Push(rec(t, &p, "", "SYSCALL", 102, 0, 21))
	r.Push(rec(t, &p, "", "CWD", 102, 0, 20))
	r.Push(rec(t, &p, "", "EOE", 102, 0, 21))
	r.Push(rec(t, &p, "", "PATH", 102, 0, 20))
	r.Push(rec(t, &p, "", "EOE", 102, 0, 20))
	r.Push(rec(t, &p, "", "EOE", 102, 0, 20)) // stray
	want := []string{
		"INTEGRITY_RULE,SYSCALL,EXECVE,CWD,PATH,PROCTITLE",
		"LOGIN,SYSCALL",
		"SYSCALL", "SYSCALL,CWD,PATH",
	}
	if len(col.evs) != len(want) {
		t.Fatalf("%d events, want %d", len(col.evs), len(want))
	}
	for i, w := range want {
		if got := types(col.evs[i]); got != w || col.evs[i].TimedOut || col.evs[i].Evicted || col.evs[i].Late {
			t.Errorf("event %d: %s (timed out %v), want %s", i, got, col.evs[i].TimedOut, w)
		}
	}
	if col.evs[2].ID.Serial != 21 || col.evs[3].ID.Serial != 20 {
		t.Errorf("close order: serials %d, %d", col.evs[2].ID.Serial, col.evs[3].ID.Serial)
	}
	st := r.Stats()
	if st.StrayEOE != 1 || st.Events != 4 || st.Records != 17 || st.InFlight != 0 || st.Late != 0 {
		t.Errorf("stats %+v: want StrayEOE 1, Events 4, Records 17, InFlight 0, Late 0", st)
	}
}

func TestReassembleNodes(t *testing.T) {
	var p Parser
	var col collector
	r := NewReassembler(ReassemblerConfig{StreamTime: true}, col.emit)
	r.Push(rec(t, &p, "a", "SYSCALL", 100, 0, 5))
	r.Push(rec(t, &p, "b", "SYSCALL", 100, 0, 5))
	r.Push(rec(t, &p, "", "SYSCALL", 100, 0, 5))
	r.Push(rec(t, &p, "b", "CWD", 100, 0, 5))
	r.Push(rec(t, &p, "a", "EOE", 100, 0, 5))
	r.Push(rec(t, &p, "", "EOE", 100, 0, 5))
	r.Push(rec(t, &p, "b", "EOE", 100, 0, 5))
	// same serial, different time: a different event
	r.Push(rec(t, &p, "a", "SYSCALL", 100, 1, 5))
	r.Push(rec(t, &p, "a", "EOE", 100, 1, 5))
	if len(col.evs) != 4 {
		t.Fatalf("%d events", len(col.evs))
	}
	for i, w := range []struct {
		node, types string
		msec        uint16
	}{{"a", "SYSCALL", 0}, {"", "SYSCALL", 0}, {"b", "SYSCALL,CWD", 0}, {"a", "SYSCALL", 1}} {
		ev := col.evs[i]
		if ev.ID.Node != w.node || types(ev) != w.types || ev.ID.Msec != w.msec {
			t.Errorf("event %d: node %q %s msec %d, want %q %s %d", i, ev.ID.Node, types(ev), ev.ID.Msec, w.node, w.types, w.msec)
		}
	}
	if r.LostHint() != 0 {
		t.Errorf("lost hint %d for equal serials on several nodes", r.LostHint())
	}
}

func TestReassembleStreamTimeout(t *testing.T) {
	var p Parser
	var col collector
	r := NewReassembler(ReassemblerConfig{StreamTime: true, Timeout: 2 * time.Second}, col.emit)
	r.Push(rec(t, &p, "", "INTEGRITY_RULE", 100, 0, 1)) // no syscall context: waits
	r.Push(rec(t, &p, "", "SYSCALL", 101, 900, 2))      // 1.9 s later: not yet
	if len(col.evs) != 0 {
		t.Fatalf("closed after 1.9 s of stream time: %s", types(col.evs[0]))
	}
	r.Push(rec(t, &p, "", "SYSCALL", 102, 500, 3)) // 2.5 s after the first
	if len(col.evs) != 1 || col.evs[0].ID.Serial != 1 || !col.evs[0].TimedOut || col.evs[0].Evicted {
		t.Fatalf("after 2.5 s: %d events %+v", len(col.evs), col.evs)
	}
	// Older records do not move the stream clock backwards.
	r.Push(rec(t, &p, "", "SYSCALL", 50, 0, 4))
	r.Flush()
	if len(col.evs) != 4 {
		t.Fatalf("flush: %d events", len(col.evs))
	}
	for _, ev := range col.evs[1:] {
		if !ev.TimedOut {
			t.Errorf("event %d closed by flush without timed_out", ev.ID.Serial)
		}
	}
	if st := r.Stats(); st.TimedOut != 4 || st.InFlight != 0 {
		t.Errorf("stats %+v", st)
	}
	// Wall-clock mode ignores record time; Maintain expires.
	col.evs = nil
	w := NewReassembler(ReassemblerConfig{Timeout: 100 * time.Millisecond}, col.emit)
	now := time.Now()
	w.Maintain(now)
	w.Push(rec(t, &p, "", "SYSCALL", 1, 0, 1))
	w.Push(rec(t, &p, "", "SYSCALL", 999999, 0, 2)) // far newer record time: nothing expires
	if len(col.evs) != 0 {
		t.Fatal("wall-clock reassembler expired on record time")
	}
	w.Maintain(now.Add(50 * time.Millisecond))
	if len(col.evs) != 0 {
		t.Fatal("expired before the timeout")
	}
	w.Maintain(now.Add(150 * time.Millisecond))
	if len(col.evs) != 2 || !col.evs[0].TimedOut {
		t.Fatalf("after timeout: %d events", len(col.evs))
	}
}

func TestReassembleEviction(t *testing.T) {
	var p Parser
	var col collector
	r := NewReassembler(ReassemblerConfig{StreamTime: true, MaxInFlight: 3}, col.emit)
	for s := 1; s <= 5; s++ {
		r.Push(rec(t, &p, "", "SYSCALL", 100, 0, s))
	}
	st := r.Stats()
	if st.Evicted != 2 || st.InFlight != 3 || st.MaxInFlight != 4 && st.MaxInFlight != 3 {
		t.Errorf("stats %+v: want Evicted 2, InFlight 3", st)
	}
	if len(col.evs) != 2 || col.evs[0].ID.Serial != 1 || col.evs[1].ID.Serial != 2 {
		t.Fatalf("evicted %d events, want serials 1 and 2 (oldest first)", len(col.evs))
	}
	for _, ev := range col.evs {
		if !ev.Evicted || !ev.TimedOut {
			t.Errorf("evicted event %d: Evicted=%v TimedOut=%v", ev.ID.Serial, ev.Evicted, ev.TimedOut)
		}
	}
	// A record for a live event refreshes it: the next eviction takes 4.
	r.Push(rec(t, &p, "", "CWD", 100, 0, 3))
	r.Push(rec(t, &p, "", "SYSCALL", 100, 0, 6))
	if col.evs[2].ID.Serial != 4 {
		t.Errorf("evicted serial %d, want 4 (3 was refreshed)", col.evs[2].ID.Serial)
	}
}

func TestReassembleLostHint(t *testing.T) {
	var p Parser
	var col collector
	r := NewReassembler(ReassemblerConfig{StreamTime: true}, col.emit)
	push := func(typ string, serial int) {
		r.Push(rec(t, &p, "", typ, 100, 0, serial))
		r.Push(rec(t, &p, "", "EOE", 100, 0, serial))
	}
	push("SYSCALL", 100)
	push("SYSCALL", 103)       // holes 101, 102
	push("SYSCALL", 101)       // late: fills 101
	push("DAEMON_START", 9559) // another counter: ignored
	push("DAEMON_END", 3)      // ignored too
	if got := r.LostHint(); got != 1 {
		t.Errorf("lost hint %d, want 1 (serial 102; 101 came late; DAEMON serials ignored)", got)
	}
	for s := 104; s <= 1200; s++ {
		push("SYSCALL", s)
	}
	if got := r.LostHint(); got != 1 {
		t.Errorf("lost hint %d after a gap-free run, want 1 (serial 102)", got)
	}
	// wrap-around and restart never report the jump
	r2 := NewReassembler(ReassemblerConfig{StreamTime: true}, col.emit)
	for _, s := range []uint32{4294967290, 4294967295, 0, 1, 2, 1000000, 5, 6} {
		r2.Push(&Record{Type: "SYSCALL", TypeNum: TypeSyscall, Sec: 100, Serial: s})
	}
	r2.Flush()
	if got := r2.LostHint(); got > 16 {
		t.Errorf("lost hint %d after wrap-around and restart: a wrap-around figure", got)
	}
	// per-node tracking: interleaved nodes with their own sequences
	r3 := NewReassembler(ReassemblerConfig{StreamTime: true}, col.emit)
	for s := 1; s <= 3000; s++ {
		r3.Push(&Record{Node: "a", Type: "SYSCALL", TypeNum: TypeSyscall, Sec: 100, Serial: uint32(s)})
		r3.Push(&Record{Node: "b", Type: "SYSCALL", TypeNum: TypeSyscall, Sec: 100, Serial: uint32(s + 50000)})
	}
	r3.Flush()
	if got := r3.LostHint(); got != 0 {
		t.Errorf("lost hint %d for two gap-free nodes", got)
	}
	// a real gap of 2000 serials is reported as 2000
	r4 := NewReassembler(ReassemblerConfig{StreamTime: true}, col.emit)
	for _, s := range []int{1, 2002} {
		r4.Push(&Record{Type: "SYSCALL", TypeNum: TypeSyscall, Sec: 100, Serial: uint32(s)})
	}
	for s := 2003; s < 4100; s++ {
		r4.Push(&Record{Type: "SYSCALL", TypeNum: TypeSyscall, Sec: 100, Serial: uint32(s)})
	}
	if got := r4.LostHint(); got != 2000 {
		t.Errorf("lost hint %d, want 2000", got)
	}
}

// wallClock is a fake wall clock for a wall-time reassembler.
type wallClock struct{ now time.Time }

func newWall(r *Reassembler) *wallClock {
	c := &wallClock{now: time.Unix(1700000000, 0)}
	r.wall = func() int64 { return c.now.UnixNano() }
	r.Maintain(c.now)
	return c
}

// tick advances the clock by d and calls Maintain.
func (c *wallClock) tick(r *Reassembler, d time.Duration) int {
	c.now = c.now.Add(d)
	return r.Maintain(c.now)
}

// TestReassembleUserMessageWithKernelRecords: a user-space message to which
// the kernel attached the sender's syscall records (same stamp and serial,
// then EOE) is one event, in replay and live, even when records of
// another event come between.
func TestReassembleUserMessageWithKernelRecords(t *testing.T) {
	for _, first := range []string{"SERVICE_START", "USER_LOGIN", "CRED_ACQ", "USER_CMD", "DAEMON_CONFIG"} {
		for _, wall := range []bool{false, true} {
			var p Parser
			var col collector
			r := NewReassembler(ReassemblerConfig{StreamTime: !wall}, col.emit)
			var c *wallClock
			if wall {
				c = newWall(r)
			}
			r.Push(rec(t, &p, "", first, 100, 7, 50))
			r.Push(rec(t, &p, "", "SYSCALL", 100, 30, 51)) // another event, within the hold
			if wall {
				c.tick(r, DefaultHold/2)
			}
			for _, typ := range []string{"SYSCALL", "SOCKADDR", "MAC_TASK_CONTEXTS", "UNKNOWN[1420]", "PROCTITLE", "EOE"} {
				r.Push(rec(t, &p, "", typ, 100, 7, 50))
			}
			if wall {
				c.tick(r, time.Second)
			} else {
				r.Push(rec(t, &p, "", "SYSCALL", 100, 60, 52))
			}
			if len(col.evs) != 1 {
				t.Fatalf("%s (wall %v): %d events, want 1", first, wall, len(col.evs))
			}
			want := first + ",SYSCALL,SOCKADDR,MAC_TASK_CONTEXTS,UNKNOWN[1420],PROCTITLE"
			if ev := col.evs[0]; types(ev) != want || ev.TimedOut || ev.Late || ev.ID.Serial != 50 {
				t.Errorf("%s (wall %v): serial %d %s timed out %v late %v, want %s", first, wall, ev.ID.Serial, types(ev), ev.TimedOut, ev.Late, want)
			}
		}
	}
}

// TestReassembleReordered: records of one event in another order
// (PROCTITLE, PATH, SYSCALL, EOE) are one event.
func TestReassembleReordered(t *testing.T) {
	for _, wall := range []bool{false, true} {
		var p Parser
		var col collector
		r := NewReassembler(ReassemblerConfig{StreamTime: !wall}, col.emit)
		var c *wallClock
		if wall {
			c = newWall(r)
		}
		for _, typ := range []string{"PROCTITLE", "PATH", "SYSCALL", "EOE"} {
			r.Push(rec(t, &p, "", typ, 200, 1, 9))
			if wall {
				c.tick(r, DefaultHold/3)
			}
		}
		r.Flush()
		if len(col.evs) != 1 || types(col.evs[0]) != "PROCTITLE,PATH,SYSCALL" || col.evs[0].TimedOut {
			t.Fatalf("wall %v: %d events, first %s", wall, len(col.evs), types(col.evs[0]))
		}
	}
}

// TestReassembleEOEStreamWaitsForEOE: once a node's stream has shown EOE,
// a last-record type inside a multi-record event does not end it; on a
// stream without EOE (audit.log) it does, after the hold.
func TestReassembleEOEStreamWaitsForEOE(t *testing.T) {
	var p Parser
	var col collector
	r := NewReassembler(ReassemblerConfig{StreamTime: true}, col.emit)
	// node a: no EOE so far; PROCTITLE ends the event after the hold.
	r.Push(rec(t, &p, "a", "SYSCALL", 100, 0, 1))
	r.Push(rec(t, &p, "a", "PROCTITLE", 100, 0, 1))
	r.Push(rec(t, &p, "a", "SYSCALL", 100, 50, 2))
	if len(col.evs) != 1 || types(col.evs[0]) != "SYSCALL,PROCTITLE" {
		t.Fatalf("no-EOE stream: %d events", len(col.evs))
	}
	// node b carries EOE: PROCTITLE first, then more records, then EOE.
	r.Push(rec(t, &p, "b", "SYSCALL", 100, 50, 1))
	r.Push(rec(t, &p, "b", "EOE", 100, 50, 1))
	r.Push(rec(t, &p, "b", "SYSCALL", 100, 60, 2))
	r.Push(rec(t, &p, "b", "PROCTITLE", 100, 60, 2))
	r.Push(rec(t, &p, "b", "SYSCALL", 100, 900, 3)) // far later: no hold to end
	r.Push(rec(t, &p, "b", "PATH", 100, 60, 2))
	r.Push(rec(t, &p, "b", "EOE", 100, 60, 2))
	got := []string{}
	for _, ev := range col.evs {
		got = append(got, ev.ID.Node+":"+types(ev))
	}
	want := "[a:SYSCALL,PROCTITLE b:SYSCALL b:SYSCALL,PROCTITLE,PATH]"
	if fmt.Sprint(got) != want {
		t.Errorf("events %v, want %s", got, want)
	}
}

// TestReassembleHoldAndLate: live, a lone record is emitted once the hold
// passed; a record of it arriving later is its own document flagged late,
// counted, and joined by the records that follow it.
func TestReassembleHoldAndLate(t *testing.T) {
	var p Parser
	var col collector
	r := NewReassembler(ReassemblerConfig{Timeout: 2 * time.Second}, col.emit)
	c := newWall(r)
	r.Push(rec(t, &p, "", "USER_LOGIN", 100, 0, 70))
	if n := c.tick(r, DefaultHold-time.Millisecond); n != 0 || len(col.evs) != 0 {
		t.Fatalf("emitted %d before the hold ended", n)
	}
	if n := c.tick(r, time.Millisecond); n != 1 || len(col.evs) != 1 || col.evs[0].Late || col.evs[0].TimedOut {
		t.Fatalf("after the hold: Maintain emitted %d, %d events", n, len(col.evs))
	}
	for _, typ := range []string{"SYSCALL", "SOCKADDR", "PROCTITLE", "EOE"} {
		r.Push(rec(t, &p, "", typ, 100, 0, 70))
	}
	if len(col.evs) != 2 || !col.evs[1].Late || types(col.evs[1]) != "SYSCALL,SOCKADDR,PROCTITLE" || col.evs[1].ID != col.evs[0].ID {
		t.Fatalf("late records: %d events, last %s late %v", len(col.evs), types(col.evs[len(col.evs)-1]), col.evs[len(col.evs)-1].Late)
	}
	if st := r.Stats(); st.Late != 3 || st.Events != 2 || st.StrayEOE != 0 {
		t.Errorf("stats %+v: want Late 3, Events 2", st)
	}
	// Past the timeout the id is forgotten: a record of it is a new event.
	c.tick(r, 2*time.Second)
	r.Push(rec(t, &p, "", "USER_LOGIN", 100, 0, 70))
	c.tick(r, time.Second)
	if len(col.evs) != 3 || col.evs[2].Late {
		t.Fatalf("after the timeout: %d events, late %v", len(col.evs), col.evs[len(col.evs)-1].Late)
	}
	// The memory of emitted ids is bounded: 4×MaxInFlight.
	r2 := NewReassembler(ReassemblerConfig{StreamTime: true, MaxInFlight: 2}, col.emit)
	for s := 1; s <= 20; s++ {
		r2.Push(rec(t, &p, "", "SYSCALL", 100, 0, s))
		r2.Push(rec(t, &p, "", "EOE", 100, 0, s))
	}
	if n := len(r2.m); n != 8 || r2.done.n != 8 {
		t.Errorf("%d ids remembered (%d done), want 8", n, r2.done.n)
	}
}
