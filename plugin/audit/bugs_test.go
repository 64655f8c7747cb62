package audit

import (
	"strings"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit/audittest"
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
	pl := replay(t, []byte(in))
	var s Summary
	Summarize(pl.evs[0], &s)
	if s.Exe != "/opt/hello" || processName(&s) != "hello" {
		t.Errorf("process.executable %q name %q; want /opt/hello, hello (the SYSCALL after execve, not the IMA caller)", s.Exe, processName(&s))
	}
}

// A sentinel in the ENRICHED tail (ARCH=? or an empty value) is written as
// null and no raw form is kept, so the line cannot be rebuilt.
func TestEnrichedSentinelIsLossless(t *testing.T) {
	in := "type=SYSCALL msg=audit(1.000:1): arch=c000003e syscall=59\x1dARCH=? SYSCALL=(null)\ntype=EOE msg=audit(1.000:1): \n"
	pl := replay(t, []byte(in))
	checkRebuild(t, []byte(in), pl.out)
}

// The ~N rename of case-insensitive duplicates can itself collide with a
// field that is literally called "a~2".
func TestRenamedKeyCollision(t *testing.T) {
	in := "type=SYSCALL msg=audit(1.000:1): a=1 A=2 a~2=3\ntype=EOE msg=audit(1.000:1): \n"
	pl := replay(t, []byte(in))
	if err := audittest.CheckKeys(pl.out[:len(pl.out)-1]); err != nil {
		t.Errorf("%v\n%s", err, pl.out)
	}
}

// A node name or record type that is not valid UTF-8 is written in the
// \xHH form but not listed in "escaped", so it cannot be told apart from
// a name that really contains the text \xHH.
func TestEscapedNodeAndTypeAreListed(t *testing.T) {
	in := "node=h\xff type=SYS\xfeCALL msg=audit(1.000:1): a=1\ntype=EOE msg=audit(1.000:1): \n"
	pl := replay(t, []byte(in))
	doc := string(pl.out)
	if !strings.Contains(doc, `"escaped"`) {
		t.Errorf("node and type escaped but not listed:\n%s", doc)
	}
}

// file.hash.* must be a hex digest; a malformed hash= value is copied.
func TestFileHashIsHex(t *testing.T) {
	in := "type=INTEGRITY_RULE msg=audit(1.000:1): file=\"/x\" hash=\"sha256:not-a-digest\" pid=1\n"
	pl := replay(t, []byte(in))
	validate(t, pl.out)
}

// process.title is written with appendJoined, which assumes valid UTF-8:
// a PROCTITLE with a byte that is not UTF-8 puts raw invalid UTF-8 into the
// document (json.go appendSummary, "title"). Found by FuzzJSONEncoder.
func TestProcessTitleIsValidUTF8(t *testing.T) {
	in := "type=SYSCALL msg=audit(1.000:9): pid=1 exe=\"/bin/x\"\ntype=PROCTITLE msg=audit(1.000:9): proctitle=61C2\n"
	pl := replay(t, []byte(in))
	validate(t, pl.out)
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

// objectKeys renames repeated names with a search that restarts at ~2 for
// every repeat: first cubic (an 8 KB line of 2000 "a=1" fields took 1.9 s,
// a 32 KB line 2m24s), after 54f2fe5 still quadratic (8000 repeats: 3 s;
// a 64 KiB line ~12 s), stalling the pipeline. Linear code does 8000 in
// milliseconds.
func TestManyRepeatedNamesEncodeFast(t *testing.T) {
	line := "type=SYSCALL msg=audit(1.000:1):" + strings.Repeat(" a=1", 8000)
	var p Parser
	r, err := p.Parse(line)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan []byte, 1)
	go func() {
		var e JSONEncoder
		done <- e.Append(nil, &Event{Records: []*Record{r}})
	}()
	select {
	case doc := <-done:
		if err := audittest.CheckKeys(doc[:len(doc)-1]); err != nil {
			t.Error(err)
		}
	case <-time.After(time.Second):
		t.Fatal("encoding one 32 KB record with 8000 repeated names takes over 1 s")
	}
}

// The ~N rename is not injective: fields "a A a~2 A~2" and fields
// "a A~3 a~2 A~2~2" both encode to the keys a, A~3, a~2, A~2~2, so the
// line cannot be rebuilt. Suggested fix: keep "line" (or an explicit
// rename map) for any record whose keys were renamed.
func TestRenameIsReversible(t *testing.T) {
	in := "type=SYSCALL msg=audit(1.000:2): a=1 A=2 a~2=3 A~2=4\ntype=EOE msg=audit(1.000:2): \n"
	pl := replay(t, []byte(in))
	checkRebuild(t, []byte(in), pl.out)
}

// Keys may not differ only by case in the Unicode sense either: "é" and
// "É" (and the Kelvin sign K and "k") are case variants.
func TestNonASCIICaseDuplicates(t *testing.T) {
	for _, in := range []string{
		"type=SYSCALL msg=audit(1.000:3): \xc3\xa9=1 \xc3\x89=2\n",
		"type=SYSCALL msg=audit(1.000:3): k=1 \xe2\x84\xaa=2\n",
	} {
		pl := replay(t, []byte(in))
		if err := audittest.CheckKeys(pl.out[:len(pl.out)-1]); err != nil {
			t.Errorf("%q: %v", in, err)
		}
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
