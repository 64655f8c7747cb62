package sigma

import (
	"bytes"
	"strings"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

// FuzzParseRules: any file content either compiles or gives problems with
// a reason; compiled rules evaluate without panicking.
func FuzzParseRules(f *testing.F) {
	f.Add([]byte(rule("x", "auditd", "    sel:\n        type: EXECVE\n        a0|contains|all:\n            - a\n            - b\n    condition: sel\n")))
	f.Add([]byte(rule("x", "process_creation", "    sel:\n        CommandLine|base64offset|contains: 'sh -i'\n    f:\n        Image|re|i: '^/usr'\n    condition: sel and not f\n")))
	f.Add([]byte(rule("x", "network_connection", "    sel:\n        DestinationIp|cidr: 10.0.0.0/8\n        DestinationPort|lt: 1024\n    condition: 1 of them\n")))
	f.Add([]byte(rule("x", "file_event", "    k:\n        '|all':\n            - a\n            - b\n    condition: k\n---\ntitle: t\n")))
	f.Add([]byte("title: [unclosed\n"))
	f.Add([]byte("action: global\n---\n"))
	f.Add([]byte("title: a\nlogsource: {product: linux, service: auditd}\ntags: [attack.persistence, attack.t1686]\ndetection:\n  sel:\n    a2|gte: 10\n   condition: sel\n---\n"))
	f.Add([]byte(rule("x", "process_creation", "    sel:\n        CommandLine|windash|contains|all: [' -i ', '-x']\n    condition: sel\n")))
	ev := &audit.Event{}
	var p audit.Parser
	for _, l := range strings.Split(strings.TrimSpace(execCurl), "\n") {
		r, err := p.Parse(strings.Replace(l, " @", "\x1d", 1))
		if err != nil {
			f.Fatal(err)
		}
		ev.Records = append(ev.Records, r)
	}
	ev.Parent = &audit.Process{Executable: "/usr/bin/bash", Args: []string{"bash"}}
	f.Fuzz(func(t *testing.T, data []byte) {
		rules, problems := parseRules("fuzz.yml", data)
		lines := bytes.Count(data, []byte("\n")) + bytes.Count(data, []byte("\r")) + 1 // yaml.v3 breaks lines at both
		for _, pr := range problems {
			if pr.Line > lines {
				t.Fatalf("problem past the last line (%d): %+v", lines, pr)
			}
			if pr.Reason == "" {
				t.Fatalf("problem without reason: %+v", pr)
			}
		}
		s := &Set{}
		for _, r := range rules {
			if r.ID == "" || r.Title == "" || r.cond == nil {
				t.Fatalf("incomplete rule %+v", r)
			}
			s.byKind[r.kind] = append(s.byKind[r.kind], r)
		}
		s.match(ev, nil)
	})
}

// FuzzCondition: any condition either compiles or is rejected with an
// error; compiled conditions evaluate without panicking.
func FuzzCondition(f *testing.F) {
	for _, c := range []string{"sel", "sel and not 1 of filter_*", "(a or b) and not (c)", "all of them",
		"1 of sel* and keywords", "not not a", "a | count() > 5", "((((a))))", "all of", "a and", "3 of them"} {
		f.Add(c)
	}
	names := []string{"sel", "selection_a", "filter_x", "keywords", "a", "b", "c", "_hidden"}
	f.Fuzz(func(t *testing.T, cond string) {
		n, err := parseCondition(cond, names)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		var st evalState
		n.eval(&st, func(i int) bool {
			if i < 0 || i >= len(names) {
				t.Fatalf("selection %d out of range", i)
			}
			return i%2 == 0
		})
	})
}
