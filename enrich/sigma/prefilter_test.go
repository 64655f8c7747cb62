package sigma

import (
	"encoding/hex"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

// acFound returns the literals the matcher finds in text, by index.
func acFound(lits []string, text string) []int {
	m := newACMatcher(lits)
	found := make([]uint64, m.words())
	var sc scratch
	m.scanText(0, text, found, &sc)
	var out []int
	for i := range lits {
		if found[i>>6]&(1<<(i&63)) != 0 {
			out = append(out, i)
		}
	}
	return out
}

// acSet is the literal set of m holding the literals ids.
func acSet(m *acMatcher, ids []int) []uint64 {
	set := make([]uint64, m.words())
	for _, i := range ids {
		set[i>>6] |= 1 << (i & 63)
	}
	return set
}

// containsFound is what acFound must return: the literals the lower-cased
// text contains.
func containsFound(lits []string, text string) []int {
	var out []int
	for i, l := range lits {
		if strings.Contains(strings.ToLower(text), l) {
			out = append(out, i)
		}
	}
	return out
}

func TestACMatcher(t *testing.T) {
	lits := []string{"he", "she", "his", "hers", "/tmp/", "tmp", "curl", "-c", "x"}
	for _, text := range []string{"", "ushers", "USHERS", "/usr/bin/CURL -c http://x", "/TMP/a", "hi\u212Ax", "tm", "sHe\x00his"} {
		if got, want := acFound(lits, text), containsFound(lits, text); !slices.Equal(got, want) {
			t.Errorf("%q: found %v, want %v", text, got, want)
		}
	}
}

// withoutPrefilter returns s with its literal prefilter and its anchor
// index off: every rule is evaluated on every event.
func withoutPrefilter(s *Set) *Set {
	p := *s
	for k, x := range s.idx {
		if x != nil {
			y := *x
			y.lits = nil
			y.byAnchor = [numAnchorFields]map[string][]int{}
			y.free = slices.Clone(x.free)
			for i := range x.rules {
				y.free[i>>6] |= 1 << (i & 63)
			}
			p.idx[k] = &y
		}
	}
	return &p
}

// hitIDs returns the ids of the rules s matches on ev.
func hitIDs(s *Set, ev *audit.Event) []string {
	var ids []string
	for _, r := range s.match(ev, nil) {
		ids = append(ids, r.ID)
	}
	return ids
}

// FuzzLiterals: the Aho-Corasick matcher (scanText, scanRest) and the
// search literal by literal (scanDirect) find exactly the literals the
// lower-cased text contains.
func FuzzLiterals(f *testing.F) {
	f.Add("he,she,his,hers", "ushers")
	f.Add("/tmp/,curl,-c", "/usr/bin/CURL -c http://x")
	f.Add("k,ab", "\u212Aab")
	f.Add("ab,cd", "xABy")
	f.Add("ks,cd", "\u212As")
	f.Fuzz(func(t *testing.T, list, text string) {
		var lits []string
		for _, l := range strings.Split(strings.ToLower(list), ",") {
			if l != "" && isASCII(l) && !strings.Contains(l, "\x00") && !slices.Contains(lits, l) {
				lits = append(lits, l)
			}
		}
		if len(lits) == 0 {
			return
		}
		got, want := acFound(lits, text), containsFound(lits, text)
		if !slices.Equal(got, want) {
			t.Fatalf("%q in %q: found %v, want %v", lits, text, got, want)
		}
		m := newACMatcher(lits)
		rest := make([]uint64, m.words())
		var sc scratch
		m.scanRest(0, text, rest, &sc)
		if !slices.Equal(rest, acSet(m, got)) {
			t.Fatalf("scanRest found %v of %q in %q, want %v", rest, lits, text, got)
		}
		refs := make([]litRef, len(lits))
		for i, l := range lits {
			refs[i] = litRef{text: l, id: int32(i)}
		}
		direct := make([]uint64, m.words())
		sc.scanDirect(refs, direct, text)
		if !slices.Equal(direct, acSet(m, got)) {
			t.Fatalf("scanDirect found %v of %q in %q, want %v", direct, lits, text, got)
		}
	})
}

// FuzzPrefilter: with random rules and a random command line, executable,
// and record value, the prefiltered evaluation matches exactly the rules
// the plain evaluation matches. Some fields are in record types where
// the kernel does not put them (name in SYSCALL, key and a2 in PATH, an
// ENRICHED comm), as the walk reads by record type.
func FuzzPrefilter(f *testing.F) {
	f.Add([]byte(rule("a", "process_creation", "    sel:\n        CommandLine|contains: 'curl '\n        Image|endswith: '/curl'\n    condition: sel\n")),
		"curl -s http://x", "/usr/bin/curl", "x")
	f.Add([]byte(rule("b", "auditd", "    sel:\n        type: EXECVE\n        a0|contains|all:\n            - cu\n            - rl\n    k:\n        - 'wget'\n    condition: sel or k\n")),
		"wget x", "/usr/bin/CURL", "WGET")
	f.Add([]byte(rule("c", "process_creation", "    sel:\n        CommandLine|cased|contains: 'Curl'\n    f:\n        Image: '/usr/bin/w*t'\n    condition: sel or f\n")),
		"Curl", "/usr/bin/wget", "\u212A")
	f.Add([]byte(rule("d", "auditd", "    sel:\n        comm|startswith: 'K'\n    condition: not sel\n")),
		"\u212Aa", "/x", "\u212A")
	f.Add([]byte(rule("e", "auditd", "    sel:\n        type: PATH\n    k:\n        - 'init'\n    z:\n        - '0'\n    condition: sel and k and not z\n")),
		"git init", "/usr/bin/git", "0")
	f.Add([]byte(rule("g", "process_creation", "    sel:\n        CommandLine|re: '-(W|R) [0-9a-f]{2}'\n    condition: sel\n")),
		"pnscan -W 0a", "/usr/bin/pnscan", "-R ff")
	f.Add([]byte(rule("f", "auditd", "    sel:\n        type: EXECVE\n    k:\n        - 'x y'\n    condition: sel and k\n")),
		"x", "/usr/bin/git", "y")
	f.Add([]byte(rule("h", "auditd", "    sel:\n        type: EXECVE\n        a1|contains: 'yloa'\n    condition: sel\n")),
		"bash", "/bin/sh", "payload")
	f.Add([]byte(rule("i", "auditd", "    sel:\n        a0: 'bash'\n    condition: sel\n")),
		"BASH", "/bin/sh", "x")
	f.Fuzz(func(t *testing.T, data []byte, cmd, exe, val string) {
		rules, _ := parseRules("fuzz.yml", data)
		s := &Set{}
		for _, r := range rules {
			s.byKind[r.kind] = append(s.byKind[r.kind], r)
		}
		for k := range s.idx {
			s.idx[k] = newIndex(s.byKind[k])
		}
		ev := &audit.Event{Kind: audit.KindAudit}
		ev.Records = []*audit.Record{
			{Type: "SYSCALL", TypeNum: audit.TypeSyscall, Fields: []audit.Field{{Name: "syscall", Value: "59"},
				{Name: "success", Value: "yes"}, {Name: "exe", Value: exe}, {Name: "comm", Value: val}, {Name: "a0", Value: val}, {Name: "name", Value: cmd}}},
			{Type: "EXECVE", TypeNum: 1309, Fields: []audit.Field{{Name: "argc", Value: "2"}, {Name: "a0", Value: cmd}, {Name: "a1", Value: val}}},
			{Type: "PATH", TypeNum: 1302, Fields: []audit.Field{{Name: "name", Value: exe}, {Name: "inode", Value: val}, {Name: "nametype", Value: cmd},
				{Name: "key", Value: val}, {Name: "a2", Value: cmd}}, Interp: []audit.Field{{Name: "OUID", Value: val}, {Name: "comm", Value: exe}}},
		}
		ev.Summary = &audit.Summary{Exec: true, Exe: exe, Args: []string{cmd, val}, Outcome: "success"}
		ev.Parent = &audit.Process{Executable: val, Args: []string{val, cmd}}
		if got, want := hitIDs(s, ev), hitIDs(withoutPrefilter(s), ev); !slices.Equal(got, want) {
			t.Fatalf("prefiltered %v, plain %v", got, want)
		}
		// The arguments as audit logs long ones: a1 in two chunks, the
		// second and a2 in a second EXECVE record.
		half := len(val) / 2
		ev.Records[1] = &audit.Record{Type: "EXECVE", TypeNum: 1309, Fields: []audit.Field{{Name: "argc", Value: "3"}, {Name: "a0", Value: cmd},
			{Name: "a1_len", Value: strconv.Itoa(len(val))}, {Name: "a1[0]", Value: val[:half]}}}
		ev.Records = slices.Insert(ev.Records, 2, &audit.Record{Type: "EXECVE", TypeNum: 1309, Fields: []audit.Field{{Name: "a1[1]", Value: val[half:]}, {Name: "a2", Value: exe}}})
		ev.Summary.Args = []string{cmd, val, exe}
		if got, want := hitIDs(s, ev), hitIDs(withoutPrefilter(s), ev); !slices.Equal(got, want) {
			t.Fatalf("arguments in chunks: prefiltered %v, plain %v", got, want)
		}
	})
}

func reLits(t testing.TB, expr string) []string {
	tree, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		t.Fatal(err)
	}
	return reLiterals(tree)
}

// TestReLiterals: the literals taken from regular expressions.
func TestReLiterals(t *testing.T) {
	for _, c := range []struct {
		re   string
		want []string
	}{
		{`-(W|R)\s?(\s|"|')([0-9a-fA-F]{2}\s?){2,20}`, []string{"-r", "-w"}}, // SigmaHQ's Pnscan
		{`^/usr/bin/curl$`, []string{"/usr/bin/curl"}},
		{`(?i)/TMP/[^/]+\.py`, []string{"/tmp/"}},
		{`(?i)base64 -d`, nil}, // k and s fold to non-ASCII letters
		{`a|bc`, nil},          // "a" is too short
		{`x*yz`, []string{"yz"}},
		{`(ab|cd)(ef|gh)`, []string{"abef", "abgh", "cdef", "cdgh"}},
		{`[0-9]+`, nil},
	} {
		if got := reLits(t, c.re); !slices.Equal(got, c.want) {
			t.Errorf("%s: %q, want %q", c.re, got, c.want)
		}
	}
}

// FuzzReLiterals: whenever a regular expression matches a text, the
// lower-cased text contains one of its literals.
func FuzzReLiterals(f *testing.F) {
	f.Add(`-(W|R)\s?(\s|"|')`, `pnscan -W "0a 0b"`)
	f.Add(`(?i)su(do)?`, "\u017fudo")
	f.Add(`(?i)[k]ill`, "\u212aill")
	f.Add(`ab(c|d)+e`, "xxabdde")
	f.Fuzz(func(t *testing.T, expr, text string) {
		re, err := regexp.Compile(expr)
		if err != nil || !re.MatchString(text) {
			return
		}
		tree, err := syntax.Parse(expr, syntax.Perl)
		if err != nil {
			return
		}
		ls := reLiterals(tree)
		if ls == nil {
			return
		}
		if !slices.ContainsFunc(ls, func(l string) bool { return strings.Contains(strings.ToLower(text), l) }) {
			t.Fatalf("%q matches %q, which holds none of %q", expr, text, ls)
		}
	})
}

// FuzzSharedPrefilter: as FuzzPrefilter, with the indexes Load builds
// (one automaton for auditd and process_creation, the executable and the
// command line scanned once for both), on an exec event whose records
// carry the summary's executable and arguments.
func FuzzSharedPrefilter(f *testing.F) {
	f.Add([]byte(rule("a", "process_creation", "    sel:\n        CommandLine|contains: 'curl '\n        Image|endswith: '/curl'\n    condition: sel\n")+
		"---\n"+rule("b", "auditd", "    sel:\n        type: EXECVE\n    k:\n        - 'curl -s'\n    condition: sel and k\n")),
		"curl", "-s", "/usr/bin/curl")
	f.Add([]byte(rule("c", "auditd", "    sel:\n        exe|endswith: '/curl'\n    condition: sel\n")+
		"---\n"+rule("d", "process_creation", "    sel:\n        Image|endswith: '/curl'\n    condition: sel\n")+
		"---\n"+rule("e", "auditd", "    sel:\n        type: ADD_USER\n    condition: sel\n")),
		"x", "y", "/usr/bin/CURL")
	f.Add([]byte(rule("g", "process_creation", "    sel:\n        CommandLine|contains: 'a b'\n    condition: sel\n")+
		"---\n"+rule("h", "auditd", "    sel:\n        a1: 'b'\n    condition: sel\n")),
		"a", "b", "/bin/a")
	f.Fuzz(func(t *testing.T, data []byte, arg0, arg1, exe string) {
		rules, _ := parseRules("fuzz.yml", data)
		s := &Set{}
		for _, r := range rules {
			s.byKind[r.kind] = append(s.byKind[r.kind], r)
		}
		s.index()
		// The records made by hand and parsed (the texts hex-encoded as
		// auditd writes them).
		made := []*audit.Record{
			{Type: "SYSCALL", TypeNum: audit.TypeSyscall, Fields: []audit.Field{{Name: "syscall", Value: "59"},
				{Name: "success", Value: "yes"}, {Name: "a1", Value: arg1}, {Name: "comm", Value: arg0}, {Name: "exe", Value: exe}},
				Interp: []audit.Field{{Name: "SYSCALL", Value: "execve"}}},
			{Type: "EXECVE", TypeNum: 1309, Fields: []audit.Field{{Name: "argc", Value: "2"}, {Name: "a0", Value: arg0}, {Name: "a1", Value: arg1}}},
			{Type: "CWD", TypeNum: 1307, Fields: []audit.Field{{Name: "cwd", Value: exe}}},
		}
		hx := func(v string) string { return strings.ToUpper(hex.EncodeToString([]byte(v))) }
		var p audit.Parser
		parse := func(lines ...string) []*audit.Record {
			var recs []*audit.Record
			for _, line := range lines {
				r, err := p.Parse(line)
				if err != nil {
					t.Fatal(err)
				}
				recs = append(recs, r)
			}
			return recs
		}
		sys := "type=SYSCALL msg=audit(1.000:1): syscall=59 success=yes a1=" + hx(arg1) + " comm=" + hx(arg0) + " exe=" + hx(exe) + "\x1dSYSCALL=execve"
		cwd := "type=CWD msg=audit(1.000:1): cwd=" + hx(exe)
		parsed := parse(sys, "type=EXECVE msg=audit(1.000:1): argc=2 a0="+hx(arg0)+" a1="+hx(arg1), cwd)
		// a1 as audit logs a long argument: in chunks, over two records
		h := len(arg1) / 2
		split := parse(sys, "type=EXECVE msg=audit(1.000:1): argc=2 a0="+hx(arg0)+" a1_len="+strconv.Itoa(2*len(arg1))+" a1[0]="+hx(arg1[:h]),
			"type=EXECVE msg=audit(1.000:1): a1[1]="+hx(arg1[h:]), cwd)
		for _, recs := range [][]*audit.Record{made, parsed, split} {
			ev := &audit.Event{Kind: audit.KindAudit, Records: recs}
			ev.Summary = &audit.Summary{Exec: true, Exe: exe, Args: []string{arg0, arg1}, Outcome: "success", Cwd: exe}
			ev.Parent = &audit.Process{Executable: arg1, Args: []string{arg0}}
			if got, want := hitIDs(s, ev), hitIDs(withoutPrefilter(s), ev); !slices.Equal(got, want) {
				t.Fatalf("prefiltered %v, plain %v (records parsed: %v)", got, want, recs[0].Line != "")
			}
		}
	})
}

// TestTextMemo: the memo finds exactly the literals a scan finds, for
// texts seen again, texts holding more literals than a slot remembers,
// non-ASCII texts, and after the automaton changes (a reload).
func TestTextMemo(t *testing.T) {
	lits := []string{"/tmp/", "tmp", "/usr/bin/", "bin", "usr", "/b", "in/", "sr/", "r/b", "u", "kelvin", "name -c"}
	other := newACMatcher([]string{"/tmp/", "worker"})
	texts := []string{"/tmp/TestGenerateCorpus1939/003/worker", "/usr/bin/bash-with-a-long-name", "short", "/tmp/x -c usr/bin r/b in/x",
		"/usr/bin/tmp/usr/bin/r/bin/", "/usr/bin/long-program-name -c x", "/opt/long-program-name -c x", "/TMP/\u212aELVIN-and-more-than-16", "/tmp/TestGenerateCorpus1939/003/worker"}
	var sc scratch
	for _, m := range []*acMatcher{newACMatcher(lits), other, newACMatcher(lits)} {
		for round := range 3 {
			for i, text := range texts {
				want := make([]uint64, m.words())
				m.scanText(0, text, want, &sc)
				got := make([]uint64, m.words())
				sc.memo.scan(m, got, &sc, text)
				if !slices.Equal(got, want) {
					t.Errorf("round %d text %d %q: memo found %b, scan %b", round, i, text, got, want)
				}
				// The same text as a command line: its words joined by spaces.
				words := strings.Split(text, " ")
				if len(words) == 1 {
					words = []string{text[:len(text)/2], text[len(text)/2:]}
					want = make([]uint64, m.words())
					sc.scanArgs(m, words, want)
				}
				got = make([]uint64, m.words())
				sc.memo.scan(m, got, &sc, words...)
				if !slices.Equal(got, want) {
					t.Errorf("round %d words %q: memo found %b, scan %b", round, words, got, want)
				}
				// Its first word from the memo, the rest scanned on from
				// the remembered state.
				got = make([]uint64, m.words())
				sc.scanLine(m, words, got)
				if !slices.Equal(got, want) {
					t.Errorf("round %d words %q: scanLine found %b, scan %b", round, words, got, want)
				}
			}
		}
	}
}

// TestEuidAnchor: a rule anchored by its euid value (as SigmaHQ's Webshell
// Remote Command Execution is) matches an exec of that user and no other,
// and is no candidate on another user's exec, while an exec that only
// has the SYSCALL anchor every exec has stays a candidate of the rules
// anchored on it.
func TestEuidAnchor(t *testing.T) {
	rules, probs := parseRules("web.yml", []byte(rule("web", "auditd",
		"    sel:\n        type: 'SYSCALL'\n        SYSCALL:\n            - 'execve'\n            - 'execveat'\n        euid: 33\n    condition: sel\n")))
	if len(rules) != 1 || len(probs) != 0 {
		t.Fatalf("rules %d, problems %v", len(rules), probs)
	}
	x := newIndex(rules)
	if x.byAnchor[anchorField("euid")]["33"] == nil || x.byAnchor[anchorField("SYSCALL")] != nil {
		t.Fatalf("the rule is not anchored on its euid alone: %v", x.byAnchor)
	}
	s := &Set{}
	s.byKind[kindAuditd], s.idx[kindAuditd] = rules, x
	for _, c := range []struct {
		euid string
		want bool
	}{{"33", true}, {"0", false}, {"330", false}, {"4294967295", false}} {
		ev := &audit.Event{Kind: audit.KindAudit}
		ev.Records = []*audit.Record{{Type: "SYSCALL", TypeNum: audit.TypeSyscall,
			Fields: []audit.Field{{Name: "syscall", Value: "59"}, {Name: "euid", Value: c.euid}, {Name: "exe", Value: "/usr/bin/id"}},
			Interp: []audit.Field{{Name: "SYSCALL", Value: "execve"}, {Name: "EUID", Value: "www-data"}}}}
		ev.Summary = &audit.Summary{Exec: true, Exe: "/usr/bin/id", Args: []string{"id"}, Outcome: "success"}
		got, plain := hitIDs(s, ev), hitIDs(withoutPrefilter(s), ev)
		if !slices.Equal(got, plain) || (len(got) == 1) != c.want {
			t.Errorf("euid %s: matched %v, plain evaluation %v, want a match %v", c.euid, got, plain, c.want)
		}
		a := &auditCtx{ev: ev, s: ev.Summary}
		if n := len(x.candidates(a, a)); n != 0 && !c.want {
			t.Errorf("euid %s: %d candidates", c.euid, n)
		}
	}
}
