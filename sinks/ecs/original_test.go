package ecs_test

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
	"github.com/audisp-enrich/audisp-enrich/sinks/ecs"
)

// eventOf parses lines (refused lines are skipped) into one event whose id
// is id, or the first record's when id is nil, as the reassembler would
// group records of one node and stamp; records of another stamp are put
// in it too, so that the rule for them is exercised. It returns nil when
// no line is accepted.
func eventOf(lines []string, id *audit.EventID) *audit.Event {
	var p audit.Parser
	ev := &audit.Event{}
	for _, l := range lines {
		r, err := p.Parse(l)
		if err != nil {
			continue
		}
		if len(ev.Records) == 0 {
			ev.ID = audit.EventID{Node: r.Node, Sec: r.Sec, Msec: r.Msec, Serial: r.Serial}
		}
		ev.Records = append(ev.Records, r)
	}
	if len(ev.Records) == 0 {
		return nil
	}
	if id != nil {
		ev.ID = *id
	}
	return ev
}

// formatCases are events (lines, and the event id when it is not the first
// record's) with the event.original the ecs profile writes for them.
var formatCases = []struct {
	name  string
	lines []string
	id    *audit.EventID
	want  string
}{
	{"exec", []string{
		`type=SYSCALL msg=audit(1700000000.100:5): arch=c000003e syscall=59 success=yes exe="/bin/ls"` + gs + `ARCH=x86_64 SYSCALL=execve`,
		`type=EXECVE msg=audit(1700000000.100:5): argc=2 a0="ls" a1="-l"`,
		`type=PROCTITLE msg=audit(1700000000.100:5): proctitle=6C73002D6C`,
	}, nil, `type=SYSCALL arch=c000003e syscall=59 success=yes exe="/bin/ls"` + gs + `ARCH=x86_64 SYSCALL=execve` +
		"\n" + `type=EXECVE argc=2 a0="ls" a1="-l"` + "\n" + `type=PROCTITLE proctitle=6C73002D6C`},
	{"node prefix and enrichment part", []string{
		`node=web1 type=SYSCALL msg=audit(1.001:2): pid=3` + gs + `UID="root"`,
		`node=web1 type=CWD msg=audit(1.001:2): cwd="/"` + gs,
		`node= type=PATH msg=audit(1.001:2): name="/x"`,
	}, nil, `node=web1 type=SYSCALL pid=3` + gs + `UID="root"` + "\n" + `node=web1 type=CWD cwd="/"` + gs + "\n" + `node= type=PATH name="/x"`},
	{"a node with colons", []string{
		`node=fe80::1:7 type=SYSCALL msg=audit(1.001:2): pid=3`,
	}, nil, `node=fe80::1:7 type=SYSCALL pid=3`},
	{"irregular spacing and empty body", []string{
		`type=SYSCALL msg=audit(1.001:2):  pid=3`,
		`type=PATH msg=audit(1.001:2): `,
		`type=PATH msg=audit(1.001:2):`,
	}, nil, `type=SYSCALL  pid=3` + "\n" + `type=PATH ` + "\n" + `type=PATH msg=audit(1.001:2):`},
	{"another stamp is kept", []string{
		`type=SYSCALL msg=audit(1.001:2): pid=3`,
		`type=PATH msg=audit(1.001:3): name="/x"`,
		`type=PATH msg=audit(01.001:2): name="/y"`,
	}, nil, `type=SYSCALL pid=3` + "\n" + `type=PATH msg=audit(1.001:3): name="/x"` + "\n" + `type=PATH msg=audit(01.001:2): name="/y"`},
	{"a first line with another stamp than event.id is kept", []string{
		`type=SYSCALL msg=audit(1.001:2): pid=3`,
		`type=PATH msg=audit(1.001:3): name="/x"`,
	}, &audit.EventID{Sec: 1, Msec: 1, Serial: 3}, `type=SYSCALL msg=audit(1.001:2): pid=3` + "\n" + `type=PATH name="/x"`},
	{"a stamp after the stamp is kept", []string{
		`type=SYSCALL msg=audit(1.001:2): pid=3`,
		`type=PATH msg=audit(1.001:2): msg=audit(1.001:2): x`,
	}, nil, `type=SYSCALL pid=3` + "\n" + `type=PATH msg=audit(1.001:2): msg=audit(1.001:2): x`},
	{"a line without the colon is kept", []string{
		`type=DAEMON_CONFIG msg=audit(1490239800.477:34) config changed, auid=0 pid=1 res=success`,
		`type=DAEMON_CONFIG msg=audit(1490239800.477:34): auid=0`,
	}, nil, `type=DAEMON_CONFIG msg=audit(1490239800.477:34) config changed, auid=0 pid=1 res=success` + "\n" + `type=DAEMON_CONFIG auid=0`},
	{"user-space record, then the kernel's", []string{
		`type=USER_AUTH msg=audit(1.001:7): pid=9 uid=0 msg='op=PAM:authentication acct="root" res=success'`,
		`type=SYSCALL msg=audit(1.001:7): arch=c000003e syscall=44 pid=9`,
	}, nil, `type=USER_AUTH pid=9 uid=0 msg='op=PAM:authentication acct="root" res=success'` + "\n" + `type=SYSCALL arch=c000003e syscall=44 pid=9`},
	{"an event.id without a stamp keeps every line", []string{
		// 19 digits overflow the parser's int64: event.id has a negative SEC.
		`type=SYSCALL msg=audit(9999999999999999999.001:2): pid=3`,
		`type=PATH msg=audit(9999999999999999999.001:2): name="/x"`,
	}, nil, `type=SYSCALL msg=audit(9999999999999999999.001:2): pid=3` + "\n" + `type=PATH msg=audit(9999999999999999999.001:2): name="/x"`},
	{"an event.id with four msec digits keeps every line", []string{
		`type=SYSCALL msg=audit(1.001:2): pid=3`,
	}, &audit.EventID{Sec: 1, Msec: 1000, Serial: 2}, `type=SYSCALL msg=audit(1.001:2): pid=3`},
}

// gs is auditd's separator before the enrichment part of a line.
const gs = "\x1d"

// TestOriginalFormat: each line of event.original is the record as
// received without the stamp of event.id when it has exactly that stamp
// right after its header; a record with another stamp or spelling, one
// whose text after the stamp starts with "msg=audit(" again, one without
// the colon, and every record of an event whose event.id gives no stamp
// are kept as received. Rebuild gives back the lines as received in every
// case.
func TestOriginalFormat(t *testing.T) {
	for _, c := range formatCases {
		ev := eventOf(c.lines, c.id)
		if len(ev.Records) != len(c.lines) {
			t.Fatalf("%s: the parser refused a line", c.name)
		}
		doc := ecs.Encode(nil, ev, ecs.Options{Original: true})
		if _, got := originalOf(t, doc); got != c.want {
			t.Errorf("%s: event.original\n%q\nwant\n%q", c.name, got, c.want)
		}
		if got := rebuilt(t, doc); !slices.Equal(got, c.lines) {
			t.Errorf("%s: rebuilt\n%q\nwant\n%q", c.name, got, c.lines)
		}
	}
}

// FuzzOriginalRebuild: for any lines the parser accepts, taken as one
// event whose id is the first record's (own) or any other, Rebuild of the
// document's event.id and event.original (JSON-decoded, \xHH undone) gives
// back exactly those lines, and no line of event.original carries the
// stamp of event.id (unless the text after it starts with "msg=audit(").
func FuzzOriginalRebuild(f *testing.F) {
	f.Add("type=SYSCALL msg=audit(1.001:2): pid=3\x1dUID=\"root\"\ntype=CWD msg=audit(1.001:2): cwd=\"/\"\ntype=PATH msg=audit(1.001:2): ", true, "", int64(0), uint16(0), uint32(0))
	f.Add("node=h\xff type=SYSCALL msg=audit(1.001:2): exe=\"a\\b\"\nnode=h\xff type=PATH msg=audit(1.001:2): msg=audit(1.001:2): x\nnode= type=PATH msg=audit(1.001:2): name=\"\xfe\"", true, "", int64(0), uint16(0), uint32(0))
	f.Add("type=DAEMON_CONFIG msg=audit(1.477:34) config changed, auid=0\ntype=DAEMON_CONFIG msg=audit(1.477:34): auid=0\ntype=X msg=audit(1.477:34):", true, "", int64(0), uint16(0), uint32(0))
	f.Add("type=SYSCALL msg=audit(1.001:2): a=1\ntype=PATH msg=audit(01.001:2): b=2\ntype=PATH msg=audit(1.001:3):  c=3\r", false, "fe80::1:1.001:3", int64(1), uint16(1), uint32(3))
	f.Add("type=SYSCALL msg=audit(9999999999999999999.001:2): a=1\ntype=PATH msg=audit(1.1000:2): b=2", false, "h\\x5c", int64(-1), uint16(1000), uint32(2))
	kept := regexp.MustCompile(`^(node=\S* )?type=\S+ msg=audit\(([^)]*)\): `)
	f.Fuzz(func(t *testing.T, text string, own bool, node string, sec int64, msec uint16, serial uint32) {
		var lines []string
		var p audit.Parser
		for _, l := range strings.Split(text, "\n") {
			if _, err := p.Parse(l); err == nil {
				lines = append(lines, l)
			}
		}
		var id *audit.EventID
		if !own {
			id = &audit.EventID{Node: node, Sec: sec, Msec: msec, Serial: serial}
		}
		ev := eventOf(lines, id)
		if ev == nil {
			return
		}
		doc := ecs.Encode(nil, ev, ecs.Options{Original: true})
		if got := rebuilt(t, doc); !slices.Equal(got, lines) {
			t.Fatalf("rebuilt\n%q\nwant\n%q\ndocument %s", got, lines, doc)
		}
		if ev.ID.Sec < 0 || ev.ID.Msec > 999 {
			return // event.id gives no stamp
		}
		st := fmt.Sprintf("%d.%03d:%d", ev.ID.Sec, ev.ID.Msec, ev.ID.Serial)
		_, orig := originalOf(t, doc)
		for _, l := range strings.Split(orig, "\n") {
			if m := kept.FindStringSubmatch(l); m != nil && m[2] == st && !strings.HasPrefix(l[len(m[0]):], "msg=audit(") {
				t.Fatalf("line %q of event.original kept the event's stamp; document %s", l, doc)
			}
		}
	})
}

// TestRebuildCommand runs the jq command docs/schema.md gives for
// rebuilding auditd's lines on the ecs + original documents of the
// formatCases, the bundled capture and the golden logs, and requires each event's records back,
// byte for byte, in order. Documents whose event.original is in the \xHH
// form are left out, as the documentation says jq cannot undo it.
func TestRebuildCommand(t *testing.T) {
	jq, err := exec.LookPath("jq")
	if err != nil {
		t.Skip("jq is not installed (apt-get install jq): the documented command is not checked")
	}
	root, err := testsupport.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	prog := testsupport.DocBlock(t, "docs/schema.md", "**Rebuilding auditd's lines.**", "```sh\njq -r '", "' events.json\n```")
	paths := []string{filepath.Join(root, "plugin/testdata/capture.log")}
	golden, _ := filepath.Glob(filepath.Join(root, "plugin/audit/testdata/*.log"))
	var evs []*audit.Event
	for _, c := range formatCases {
		evs = append(evs, eventOf(c.lines, c.id))
	}
	for _, path := range append(paths, golden...) {
		evs = append(evs, events(t, path)...)
	}
	var in bytes.Buffer
	var want []string
	for _, ev := range evs {
		d := ecs.Encode(nil, ev, ecs.Options{Original: true})
		if bytes.Contains(d, []byte(`"event.original"`)) {
			continue // escaped: see above
		}
		in.Write(d)
		for _, r := range ev.Records {
			want = append(want, r.Line)
		}
	}
	cmd := exec.Command(jq, "-r", prog)
	cmd.Stdin = &in
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("jq: %v\n%s", err, stderr.Bytes())
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if !slices.Equal(got, want) {
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				t.Fatalf("line %d: jq gives\n%q\nwant\n%q", i, got[i], want[i])
			}
		}
		t.Fatalf("jq gives %d lines, want %d", len(got), len(want))
	}
	t.Logf("%d lines rebuilt by the documented jq command", len(got))
}
