package audit

import (
	"fmt"
	"testing"
	"time"
)

// recordShapes are the record sequences of real events, in the order the
// kernel and auditd write them: syscall events, user-space messages with
// the kernel's records attached, lone user and daemon records, the
// PROCTITLE-first ordering, events without EOE (audit.log).
var recordShapes = [][]string{
	{"SYSCALL", "EXECVE", "CWD", "PATH", "PATH", "PROCTITLE", "EOE"},
	{"SERVICE_START", "SYSCALL", "SOCKADDR", "MAC_TASK_CONTEXTS", "PROCTITLE", "EOE"},
	{"CRED_ACQ", "SYSCALL", "SOCKADDR", "UNKNOWN[1420]", "PROCTITLE", "EOE"},
	{"USER_LOGIN"},
	{"USER_START", "SYSCALL", "EOE"},
	{"DAEMON_CONFIG"},
	{"DAEMON_START"},
	{"PROCTITLE", "PATH", "SYSCALL", "EOE"},
	{"INTEGRITY_RULE", "SYSCALL", "CWD", "PATH", "PROCTITLE", "EOE"},
	{"CONFIG_CHANGE", "SYSCALL", "SOCKADDR", "PROCTITLE", "EOE"},
	{"SYSCALL", "CWD", "PATH", "PROCTITLE"},
	{"AVC", "SYSCALL", "PROCTITLE", "EOE"},
	{"ANOM_PROMISCUOUS"},
}

// recordBody is a real-looking body for each record type of recordShapes.
var recordBody = map[string]string{
	"SYSCALL":           `: arch=c000003e syscall=59 success=yes exit=0 a0=55d0 a1=55e0 a2=55f0 a3=0 items=2 ppid=1 pid=2 auid=1000 uid=0 comm="x" exe="/usr/bin/x" key="k"`,
	"EXECVE":            `: argc=2 a0="x" a1=2D61`,
	"CWD":               `: cwd="/root"`,
	"PATH":              `: item=0 name="/usr/bin/x" inode=1 dev=fe:01 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL`,
	"PROCTITLE":         `: proctitle=78002D61`,
	"EOE":               `: `,
	"SERVICE_START":     `: pid=1 uid=0 auid=4294967295 ses=4294967295 msg='unit=cron comm="systemd" exe="/usr/lib/systemd/systemd" hostname=? addr=? terminal=? res=success'`,
	"SOCKADDR":          `: saddr=100000000000000000000000`,
	"MAC_TASK_CONTEXTS": `: subj_selinux=system_u:system_r:init_t:s0 subj_apparmor=unconfined`,
	"UNKNOWN[1420]":     `: subj_apparmor=unconfined`,
	"CRED_ACQ":          `: pid=5 uid=0 auid=1000 ses=3 msg='op=PAM:setcred grantors=pam_permit acct="alice" exe="/usr/sbin/sshd" hostname=? addr=? terminal=ssh res=success'`,
	"USER_LOGIN":        `: pid=5 uid=0 auid=1000 ses=3 msg='op=login id=1000 exe="/usr/sbin/sshd" hostname=? addr=? terminal=/dev/pts/1 res=success'`,
	"USER_START":        `: pid=5 uid=0 auid=1000 ses=3 msg='op=PAM:session_open acct="alice" exe="/usr/sbin/sshd" res=success'`,
	"DAEMON_CONFIG":     ` config changed, auid=0 pid=1512 subj=system_u:system_r:auditd_t:s0 res=success`,
	"DAEMON_START":      `: op=start ver=4.2.1 format=enriched kernel=6.12.0 auid=4294967295 pid=9 uid=0 ses=4294967295 res=success`,
	"INTEGRITY_RULE":    `: file="/usr/bin/x" hash="sha256:00ff" ppid=1 pid=2 auid=0 uid=0 comm="x"`,
	"CONFIG_CHANGE":     `: auid=0 ses=1 op=add_rule key="k" list=4 res=1`,
	"AVC":               `: apparmor="DENIED" operation="open" profile="x" name="/etc/shadow" pid=2 comm="x"`,
	"ANOM_PROMISCUOUS":  `: dev=eth0 prom=256 old_prom=0 auid=0 uid=0 gid=0 ses=1`,
}

// fuzzGaps are the steps of time between events (replay) or records
// (live), around the hold and the timeout.
var fuzzGaps = []time.Duration{0, 0, 0, time.Millisecond, 10 * time.Millisecond, DefaultHold - time.Millisecond,
	DefaultHold, DefaultHold + time.Millisecond, 300 * time.Millisecond, time.Second, 2*time.Second - time.Millisecond, 2 * time.Second, 5 * time.Second}

type fuzzBytes struct {
	b []byte
	i int
}

func (g *fuzzBytes) next() int {
	if g.i >= len(g.b) {
		return 0
	}
	g.i++
	return int(g.b[g.i-1])
}

// FuzzReassemble feeds the reassembler with events of real record shapes,
// in an order and with timing taken from the input, in replay (stream
// time) or live (wall time with Maintain) mode. Invariants: every record
// but EOE is in exactly one document, with its own id; an id has one
// document that is not late, unless a record of it came more than the
// timeout after its last document was emitted (then the id is forgotten);
// a late document follows a document of its id; nothing panics.
func FuzzReassemble(f *testing.F) {
	f.Add(false, []byte{8, 1, 0, 0, 2, 0, 0, 7, 0, 0, 3, 0, 5, 5, 0, 1, 3, 9})
	f.Add(true, []byte{8, 1, 0, 0, 2, 0, 0, 7, 0, 0, 3, 0, 5, 5, 0, 1, 3, 9})
	f.Add(false, []byte{15, 3, 0, 7, 10, 1, 8, 5, 0, 12, 4, 0, 9, 2, 4, 40, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
	f.Add(true, []byte{15, 3, 0, 7, 10, 1, 8, 5, 0, 12, 4, 0, 9, 2, 4, 40, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17})
	f.Add(true, []byte{1, 1, 0, 0, 0, 0, 0, 12, 0, 12, 12, 12, 12})
	f.Fuzz(func(t *testing.T, wall bool, data []byte) {
		g := &fuzzBytes{b: data}
		const timeout = 2 * time.Second
		maxInFlight := []int{4, 64}[g.next()%2]
		nev := 1 + g.next()%16
		type item struct {
			line string
			at   time.Duration // stream time of the event
		}
		var items []item
		at := time.Duration(0)
		for i := 0; i < nev; i++ {
			shape := recordShapes[g.next()%len(recordShapes)]
			node := ""
			if g.next()%4 == 0 {
				node = "node=h2 "
			}
			at += fuzzGaps[g.next()%len(fuzzGaps)]
			ts := time.Unix(1700000000, 0).Add(at)
			for _, typ := range shape {
				l := fmt.Sprintf("%stype=%s msg=audit(%d.%03d:%d)%s", node, typ, ts.Unix(), ts.Nanosecond()/1e6, 1000+i, recordBody[typ])
				items = append(items, item{l, at})
			}
		}
		for n := g.next() % 48; n > 0; n-- {
			i, j := g.next()%len(items), g.next()%len(items)
			items[i], items[j] = items[j], items[i]
		}

		emitted := map[EventID]time.Duration{} // when the last document of an id was emitted
		plain := map[EventID]int{}             // documents not late
		allowed := map[EventID]int{}           // ids forgotten, then seen again
		var clock time.Duration
		inDocs := map[*Record]int{}
		r := NewReassembler(ReassemblerConfig{Timeout: timeout, MaxInFlight: maxInFlight, StreamTime: !wall}, func(ev *Event) {
			if _, ok := emitted[ev.ID]; !ok && ev.Late {
				t.Fatalf("late document %s without an earlier one", ev.ID)
			}
			if !ev.Late {
				plain[ev.ID]++
			}
			emitted[ev.ID] = clock
			if len(ev.Records) == 0 {
				t.Fatalf("document %s without records", ev.ID)
			}
			for _, rec := range ev.Records {
				inDocs[rec]++
				if (EventID{rec.Node, rec.Sec, rec.Msec, rec.Serial}) != ev.ID {
					t.Fatalf("record of %s:%d.%03d:%d in document %s", rec.Node, rec.Sec, rec.Msec, rec.Serial, ev.ID)
				}
			}
		})
		base := time.Unix(1800000000, 0)
		if wall {
			r.wall = func() int64 { return base.Add(clock).UnixNano() }
			r.Maintain(base)
		}
		var p Parser
		var pushed []*Record
		for _, it := range items {
			rec, err := p.Parse(it.line)
			if err != nil {
				t.Fatalf("%q: %v", it.line, err)
			}
			if wall {
				if d := fuzzGaps[g.next()%len(fuzzGaps)]; d > 0 {
					clock += d
					r.Maintain(base.Add(clock))
				}
			} else {
				clock = max(clock, it.at)
			}
			id := EventID{rec.Node, rec.Sec, rec.Msec, rec.Serial}
			if e, ok := emitted[id]; ok && clock-e >= timeout && rec.TypeNum != TypeEOE {
				allowed[id]++
			}
			r.Push(rec)
			if rec.TypeNum != TypeEOE {
				pushed = append(pushed, rec)
			}
		}
		r.Flush()
		for _, rec := range pushed {
			if inDocs[rec] != 1 {
				t.Fatalf("record %q in %d documents", rec.Line, inDocs[rec])
			}
		}
		if len(inDocs) != len(pushed) {
			t.Fatalf("%d records in documents, %d pushed", len(inDocs), len(pushed))
		}
		for id, n := range plain {
			if n > 1+allowed[id] {
				t.Fatalf("id %s has %d documents not flagged late", id, n)
			}
		}
		if st := r.Stats(); st.InFlight != 0 || st.Records != uint64(len(items)) {
			t.Fatalf("stats after flush %+v, %d records pushed", st, len(items))
		}
	})
}
