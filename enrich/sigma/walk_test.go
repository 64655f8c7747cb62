package sigma

import (
	"encoding/hex"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

// TestWalkReadsUnusualRecords pins what the walk may not skip: a field a
// rule reads in any record type is read in a record type no other rule
// names, an anchor without a record type is looked up in every record
// type, a field only an anchored rule reads for its facts is scanned when
// that rule's anchor is found, and a field read only in one record type
// is found there. Every case is compared with the evaluation of every
// rule on the event (withoutPrefilter).
func TestWalkReadsUnusualRecords(t *testing.T) {
	rules := []string{
		rule("any-name", "auditd", "    sel:\n        name|contains: 'evil-name'\n    condition: sel\n"),
		rule("any-key", "auditd", "    sel:\n        key: 'susp_act'\n    condition: sel\n"),
		rule("gated", "auditd", "    sel:\n        type: SYSCALL\n        comm: 'mytool'\n        key|contains: 'watchme'\n    condition: sel\n"),
		rule("user-cmd", "auditd", "    sel:\n        type: USER_CMD\n        cmd|contains: 'rm -rf'\n    condition: sel\n"),
	}
	e := newTestEnricher(t, rules...)
	s := e.Set()
	x := s.idx[kindAuditd]
	// The cases below reach the paths they are about.
	if f := x.scope.of(audit.TypeSyscall).find("key"); f == nil || f.scan || !slices.Equal(f.gate, []int32{1, 2}) || f.anchor < 0 {
		t.Fatalf("SYSCALL key: %+v, want an anchor gated by the rules any-key and gated", f)
	}
	if f := x.scope.of(audit.TypeSyscall).find("cmd"); f != nil {
		t.Fatalf("SYSCALL cmd is read (%+v): only USER_CMD's is", f)
	}
	if f := x.scope.of(1302).find("name"); f == nil || !f.scan {
		t.Fatalf("PATH name: %+v, want scanned", f)
	}
	for _, c := range []struct {
		name, text string
		want       []string
	}{
		{"name in a SYSCALL record", `type=SYSCALL msg=audit(1.000:1): syscall=59 success=yes name="/tmp/evil-name" comm="x" exe="/bin/x"`, []string{"any-name"}},
		{"name in a PATH record", `type=PATH msg=audit(1.000:1): item=0 name="/tmp/EVIL-NAME" nametype=NORMAL`, []string{"any-name"}},
		{"key in a PATH record", `type=PATH msg=audit(1.000:1): item=0 name="/x" key="susp_act"`, []string{"any-key"}},
		{"key in a CWD record", `type=CWD msg=audit(1.000:1): cwd="/" key="susp_act"`, []string{"any-key"}},
		{"anchored, gated key", `type=SYSCALL msg=audit(1.000:1): syscall=59 success=yes comm="mytool" exe="/bin/mytool" key="do_watchme"`, []string{"gated"}},
		{"gated key, other comm", `type=SYSCALL msg=audit(1.000:1): syscall=59 success=yes comm="other" exe="/bin/mytool" key="do_watchme"`, nil},
		{"gated key in a PATH record", `type=SYSCALL msg=audit(1.000:1): syscall=59 success=yes comm="mytool" exe="/bin/mytool"
type=PATH msg=audit(1.000:1): item=0 name="/x" key="do_watchme"`, nil},
		{"USER_CMD cmd", `type=USER_CMD msg=audit(1.000:1): pid=1 uid=0 cmd="rm -rf /tmp/x" terminal=pts/0 res=success`, []string{"user-cmd"}},
		{"cmd in a SYSCALL record", `type=SYSCALL msg=audit(1.000:1): syscall=59 success=yes cmd="rm -rf /tmp/x"`, nil},
	} {
		ev := eventOf(t, c.text)
		ev.Kind = audit.KindAudit
		got, plain := hitIDs(s, ev), hitIDs(withoutPrefilter(s), ev)
		if !slices.Equal(got, c.want) || !slices.Equal(plain, c.want) {
			t.Errorf("%s: matched %v, every rule evaluated %v, want %v", c.name, got, plain, c.want)
		}
	}
}

// TestPrefilterExactOnCaptures: on the bundled capture and, when present
// and not -short, the corpus of make corpus, the prefilter and the anchor
// index change no event's matches: the same rules match as when every
// rule is evaluated on every event.
func TestPrefilterExactOnCaptures(t *testing.T) {
	s, err := Load(sharedRules(t))
	if err != nil {
		t.Fatal(err)
	}
	plain := withoutPrefilter(s)
	logs := []string{benchCorpus()}
	if c := "/var/tmp/audisp-enrich-corpus.log"; os.Getenv("AUDISP_ENRICH_CORPUS") == "" && !testing.Short() {
		if _, err := os.Stat(c); err == nil {
			logs = append(logs, c)
		}
	}
	for _, l := range logs {
		hits := 0
		for _, ev := range readEvents(t, l) {
			got, want := hitIDs(s, ev), hitIDs(plain, ev)
			if !slices.Equal(got, want) {
				t.Fatalf("%s: event %v: matched %v, every rule evaluated %v", l, ev.ID, got, want)
			}
			hits += len(got)
		}
		if hits == 0 {
			t.Fatalf("%s: no rule matched: the comparison shows nothing", l)
		}
		t.Logf("%s: %d matches, the same with every rule evaluated", l, hits)
	}
}

// TestAnchorKeyFilter: the filter an anchor value passes before the map
// of keys is looked up (index.mayBeKey) lets through every value that
// lower-cases to a key: the key, its upper-case forms, and a non-ASCII
// value whose lower-case form is ASCII (the Kelvin sign lower-cases to k,
// so the value is two bytes longer than the key it becomes); and the rule
// anchored on that key, by the base name of Image, matches each, as when
// every rule is evaluated. Values that cannot be the key are ruled out.
func TestAnchorKeyFilter(t *testing.T) {
	e := newTestEnricher(t, rule("kill", "process_creation", "    sel:\n        Image|endswith: '/kill'\n    condition: sel\n"))
	s := e.Set()
	x := s.idx[kindProcess]
	if x.byAnchor[anchorImage]["kill"] == nil {
		t.Fatal("the rule is not anchored on the Image kill: the cases below show nothing")
	}
	for _, v := range []string{"worker", "kil", "kilt", "skill"} {
		if x.mayBeKey(anchorImage, v) {
			t.Errorf("%q: let through, but it cannot be the one key kill", v)
		}
	}
	for _, v := range []string{"kill", "KILL", "Kill", "\u212Aill"} {
		if !x.mayBeKey(anchorImage, v) {
			t.Errorf("%q: ruled out, but it lower-cases to the key kill", v)
		}
		exe := "/bin/" + v
		ev := eventOf(t, `type=SYSCALL msg=audit(1.000:1): syscall=59 success=yes comm="kill" exe=`+strings.ToUpper(hex.EncodeToString([]byte(exe)))+`
type=EXECVE msg=audit(1.000:1): argc=1 a0="kill"`)
		ev.Kind = audit.KindAudit
		ev.Summary = &audit.Summary{Exec: true, Exe: exe, Args: []string{"kill"}, Outcome: "success"}
		if got, plain := hitIDs(s, ev), hitIDs(withoutPrefilter(s), ev); !slices.Equal(got, []string{"kill"}) || !slices.Equal(plain, got) {
			t.Errorf("Image %q: matched %v, every rule evaluated %v, want [kill]", exe, got, plain)
		}
	}
}

// A keyword search reads every value of the records it may match, also
// fields no rule names: the walk's rule-out of names by hash slot is for
// records read field by field only.
func TestWalkKeywordReadsUnnamedFields(t *testing.T) {
	s := newTestEnricher(t, rule("keyword", "auditd", "    keywords:\n        - 'evilword'\n    condition: keywords\n")).Set()
	for _, c := range []struct {
		name, text string
		want       []string
	}{
		{"keyword in a field no rule names", `type=SYSCALL msg=audit(1.000:1): syscall=59 success=yes zork="an-evilword-here" comm="x"`, []string{"keyword"}},
		{"no keyword", `type=SYSCALL msg=audit(1.000:1): syscall=59 success=yes zork="an-evil-word" comm="x"`, nil},
	} {
		ev := eventOf(t, c.text)
		ev.Kind = audit.KindAudit
		got, plain := hitIDs(s, ev), hitIDs(withoutPrefilter(s), ev)
		if !slices.Equal(got, c.want) || !slices.Equal(plain, c.want) {
			t.Errorf("%s: matched %v, every rule evaluated %v, want %v", c.name, got, plain, c.want)
		}
	}
}

// TestSyntaxErrorLine: a YAML syntax error is reported at the faulty line,
// for parser errors (yaml.v3 names the line before the construct's start)
// as for scanner errors, also in a later document of the file, and after
// a valid flow list or quoted scalar over several lines (whose cut prefix
// fails too: before, its first line was blamed).
func TestSyntaxErrorLine(t *testing.T) {
	head := "title: a\nid: b\nlogsource: {product: linux, category: process_creation}\ndetection:\n  sel:\n"
	for _, c := range []struct {
		name, text string
		line       int
	}{
		{"unclosed flow sequence", head + "    Image: [/x, /y\n  condition: sel\n", 6},
		{"bad indent", head + "    Image: /x\n   condition: sel\n", 7},
		{"tab", head + "\tImage: /x\n  condition: sel\n", 6},
		{"second document", head + "    Image: /x\n  condition: sel\n---\n" + strings.Replace(head, "id: b", "id: c", 1) + "    Image: /x\n   condition: sel\n", 15},
		{"after a flow list over two lines", head + "    Image: [/x,\n      /y]\n   condition: sel\n", 8},
		{"after a quoted scalar over two lines", head + "    Image: '/x\n      y'\n   condition: sel\n", 8},
		{"after a flow list further down", head + "    Image: /x\n  condition: sel\nfalsepositives: [a,\n  b]\nlevel: high\n bad: x\n", 11},
		{"unclosed quote closed far below", head + "    Image: '/x\n  condition: sel\nfalsepositives: [a,\n  b]\nlevel: high\ndescription: it's\n", 6},
	} {
		_, problems := parseRules("r.yml", []byte(c.text))
		if len(problems) != 1 || problems[0].Line != c.line || strings.Contains(problems[0].Reason, "line") {
			t.Errorf("%s: problems %v, want one at line %d (the reason without yaml.v3's line)", c.name, problems, c.line)
		}
	}
}
