package audit

import (
	"strings"
	"testing"
	"time"
)

// Regression tests for defects found while writing the test suite. Each
// states the input and the expected output.

// The summary takes process.* from the first task record. With IMA the
// INTEGRITY_RULE comes first and describes the caller before execve
// (exe=/bin/busybox), while SYSCALL describes the process after it: ECS
// process.executable/name must be the executed program.
func TestSummaryProcessFromSyscallNotIntegrityRule(t *testing.T) {
	in := "type=INTEGRITY_RULE msg=audit(1795454964.728:11): file=\"/opt/hello\" hash=\"sha256:ab9edcf9b6c13845f1e8617c2d2da3451c65ccaa74b66139b3e760c66accf015\" ppid=1 pid=97 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm=\"init\" exe=\"/bin/busybox\" subj=unconfined\n" +
		"type=SYSCALL msg=audit(1795454964.728:11): arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=4 items=0 ppid=1 pid=97 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm=\"hello\" exe=\"/opt/hello\" subj=unconfined key=(null)\n" +
		"type=EOE msg=audit(1795454964.728:11): \n"
	var evs []*Event
	var p Parser
	r := NewReassembler(ReassemblerConfig{StreamTime: true}, func(ev *Event) { evs = append(evs, ev) })
	for _, l := range strings.Split(in, "\n") {
		if rec, err := p.Parse(l); err == nil {
			r.Push(rec)
		}
	}
	r.Flush()
	var s Summary
	Summarize(evs[0], &s)
	if s.Exe != "/opt/hello" || ProcessName(&s) != "hello" {
		t.Errorf("process.executable %q name %q; want /opt/hello, hello (the SYSCALL after execve, not the IMA caller)", s.Exe, ProcessName(&s))
	}
}

// event.action (Summary.Syscall) took the ENRICHED SYSCALL= value as is:
// auditd writes SYSCALL=(null) (or ?) for a number it cannot name, and
// event.action was "(null)". A sentinel falls back to the number.
func TestSyscallSentinelFallsBackToNumber(t *testing.T) {
	for _, name := range []string{"(null)", "?", ""} {
		var p Parser
		r, err := p.Parse("type=SYSCALL msg=audit(1.000:1): arch=c000003e syscall=451 success=yes exit=0 pid=5\x1dARCH=x86_64 SYSCALL=" + name)
		if err != nil {
			t.Fatal(err)
		}
		var s Summary
		Summarize(&Event{Records: []*Record{r}}, &s)
		if s.Syscall != "451" {
			t.Errorf("SYSCALL=%s: Syscall %q, want 451", name, s.Syscall)
		}
	}
}

// execveArgs sizes argv by the highest aN index it sees, not by what is
// present: one continuation EXECVE record (no argc=) with a16000000[0]=41
// allocates 1.6 GB and yields 16 million empty arguments (summary.go
// execveArgs, parts := make([][]string, argc)). A gap in the indices must
// not cost memory proportional to the index.
func TestExecveSparseIndexBounded(t *testing.T) {
	var p Parser
	r, err := p.Parse("type=EXECVE msg=audit(1.000:1): a1000000[0]=41")
	if err != nil {
		t.Fatal(err)
	}
	var s Summary
	Summarize(&Event{Records: []*Record{r}}, &s)
	if len(s.Args) > 1000 {
		t.Errorf("%d arguments from one 40-byte record", len(s.Args))
	}
}

// In stream time the reassembler expires events only when one record moves
// the clock by 0.5 s or more at once (reassemble.go Push, "advanced"). With
// records every 100 ms, as in any busy audit.log replay, an event without
// EOE (an INTEGRITY_RULE without syscall context, any event of a log
// written to disk, where auditd leaves out EOE) never times out: it waits
// for eviction or the final flush.
func TestStreamTimeoutWithSteadyRecords(t *testing.T) {
	var p Parser
	var col collector
	r := NewReassembler(ReassemblerConfig{StreamTime: true, Timeout: 2 * time.Second}, col.emit)
	r.Push(rec(t, &p, "", "INTEGRITY_RULE", 100, 0, 1))
	for i := 1; i <= 100; i++ { // one PROCTITLE-closed event every 100 ms for 10 s
		r.Push(rec(t, &p, "", "PROCTITLE", 100+int64(i/10), (i%10)*100, 1+i))
	}
	for _, ev := range col.evs {
		if ev.ID.Serial == 1 {
			if !ev.TimedOut {
				t.Error("serial 1 closed but not flagged timed_out")
			}
			return
		}
	}
	t.Errorf("after 10 s of stream time the event of serial 1 is still open (in flight: %d)", r.Stats().InFlight)
}
