package attack

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

// syscallRecord builds a SYSCALL record shaped like the kernel's, with the
// given decoded key= value (raw hex when it holds a 0x01 separator).
func syscallRecord(key string) *audit.Record {
	fields := []audit.Field{
		{Name: "arch", Raw: "c000003e", Value: "c000003e"},
		{Name: "syscall", Raw: "59", Value: "59"},
		{Name: "success", Raw: "yes", Value: "yes"},
		{Name: "exit", Raw: "0", Value: "0"},
		{Name: "a0", Raw: "5595de126220", Value: "5595de126220"},
		{Name: "a1", Raw: "5595de126b00", Value: "5595de126b00"},
		{Name: "a2", Raw: "5595de121a00", Value: "5595de121a00"},
		{Name: "a3", Raw: "8", Value: "8"},
		{Name: "items", Raw: "2", Value: "2"},
		{Name: "ppid", Raw: "3048132", Value: "3048132"},
		{Name: "pid", Raw: "3048133", Value: "3048133"},
		{Name: "auid", Raw: "4294967295", Value: "4294967295"},
		{Name: "uid", Raw: "0", Value: "0"},
		{Name: "gid", Raw: "0", Value: "0"},
		{Name: "euid", Raw: "0", Value: "0"},
		{Name: "suid", Raw: "0", Value: "0"},
		{Name: "fsuid", Raw: "0", Value: "0"},
		{Name: "egid", Raw: "0", Value: "0"},
		{Name: "sgid", Raw: "0", Value: "0"},
		{Name: "fsgid", Raw: "0", Value: "0"},
		{Name: "tty", Raw: "(none)", Value: "(none)"},
		{Name: "ses", Raw: "4294967295", Value: "4294967295"},
		{Name: "comm", Raw: `"ip"`, Value: "ip", Enc: audit.Quoted},
		{Name: "exe", Raw: `"/usr/sbin/ip"`, Value: "/usr/sbin/ip", Enc: audit.Quoted},
		{Name: "subj", Raw: "kernel", Value: "kernel"},
	}
	switch {
	case key == "(null)":
		fields = append(fields, audit.Field{Name: "key", Raw: key, Value: key})
	case strings.IndexByte(key, KeySeparator) >= 0:
		fields = append(fields, audit.Field{Name: "key", Raw: fmt.Sprintf("%X", key), Value: key, Enc: audit.Hex})
	default:
		fields = append(fields, audit.Field{Name: "key", Raw: `"` + key + `"`, Value: key, Enc: audit.Quoted})
	}
	return &audit.Record{Type: "SYSCALL", TypeNum: 1300, Sec: 1774423861, Msec: 441, Serial: 7287850, Fields: fields, NestedFrom: -1}
}

func plainRecord(typ string, num uint16, fields ...string) *audit.Record {
	r := &audit.Record{Type: typ, TypeNum: num, Sec: 1774423861, Msec: 441, Serial: 7287850, NestedFrom: -1}
	for i := 0; i+1 < len(fields); i += 2 {
		r.Fields = append(r.Fields, audit.Field{Name: fields[i], Raw: fields[i+1], Value: fields[i+1]})
	}
	return r
}

// eventWithKeys builds an execve event: a SYSCALL record per key, then
// EXECVE, CWD, two PATH and a PROCTITLE record, none of which has a key.
func eventWithKeys(keys ...string) *audit.Event {
	ev := &audit.Event{ID: audit.EventID{Sec: 1774423861, Msec: 441, Serial: 7287850}}
	for _, k := range keys {
		ev.Records = append(ev.Records, syscallRecord(k))
	}
	ev.Records = append(ev.Records,
		plainRecord("EXECVE", 1309, "argc", "2", "a0", "ip", "a1", "a"),
		plainRecord("CWD", 1307, "cwd", "/root"),
		plainRecord("PATH", 1302, "item", "0", "name", "/usr/sbin/ip", "inode", "1234", "dev", "08:01", "mode", "0100755"),
		plainRecord("PATH", 1302, "item", "1", "name", "/lib64/ld-linux-x86-64.so.2", "inode", "99", "dev", "08:01", "mode", "0100755"),
		plainRecord("PROCTITLE", 1327, "proctitle", "ip a"),
	)
	return ev
}

func newEnricher(t testing.TB, cfg Config) *Enricher {
	t.Helper()
	e, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func runEnrich(t testing.TB, e *Enricher, ev *audit.Event) {
	t.Helper()
	if err := e.Enrich(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
}

// idSources renders ev.Techniques as "ID<source" strings for comparison.
func idSources(ev *audit.Event) []string {
	var s []string
	for _, te := range ev.Techniques {
		s = append(s, te.ID+"<"+te.Source)
	}
	return s
}

func TestEnrichTechniqueFields(t *testing.T) {
	e := newEnricher(t, DefaultConfig())
	ev := eventWithKeys("T1059.004_1")
	runEnrich(t, e, ev)
	want := []audit.Technique{{
		ID:        "T1059.004",
		Name:      "Unix Shell",
		Reference: "https://attack.mitre.org/techniques/T1059/004/",
		ParentID:  "T1059",
		Parent:    "Command and Scripting Interpreter",
		Tactics:   []audit.Tactic{{ID: "TA0002", Name: "Execution", Reference: "https://attack.mitre.org/tactics/TA0002/"}},
		Source:    "key:T1059.004_1",
	}}
	if !reflect.DeepEqual(ev.Techniques, want) {
		t.Fatalf("got %+v\nwant %+v", ev.Techniques, want)
	}
}

func TestEnrichKeys(t *testing.T) {
	e := newEnricher(t, DefaultConfig())
	cases := []struct {
		name string
		keys []string
		want []string
	}{
		{"id with index", []string{"T1548.001_12"}, []string{"T1548.001<key:T1548.001_12"}},
		{"several keys joined by 0x01", []string{"T1548.001_12\x01recon\x01(null)"},
			[]string{"T1548.001<key:T1548.001_12", "T1082<key:recon", "T1033<key:recon"}},
		{"key map is case-blind, source keeps the case", []string{"RECON"},
			[]string{"T1082<key:RECON", "T1033<key:RECON"}},
		{"white space and lower case", []string{" \tt1014_rootkit "}, []string{"T1014<key:t1014_rootkit"}},
		{"revoked id maps to its replacement", []string{"T1002_1"}, []string{"T1560<key:T1002_1"}},
		{"deprecated id is kept", []string{"T1043_Commonly_Used_Port"}, []string{"T1043<key:T1043_Commonly_Used_Port"}},
		{"duplicates across records keep the first source", []string{"susp_activity", "T1105"},
			[]string{"T1105<key:susp_activity"}},
		{"revoked and replacement deduplicated", []string{"T1053.001_14\x01T1053.002_1"},
			[]string{"T1053.002<key:T1053.001_14"}},
		{"unknown id", []string{"T9999_1"}, nil},
		{"no key", []string{"(null)"}, nil},
		{"empty keys", []string{"\x01 \x01"}, nil},
		{"not ATT&CK", []string{"sysctl"}, nil},
		{"broken -F key", []string{"-F"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev := eventWithKeys(c.keys...)
			runEnrich(t, e, ev)
			if got := idSources(ev); !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestEnrichKeepsExistingTechniques(t *testing.T) {
	e := newEnricher(t, DefaultConfig())
	ev := eventWithKeys("T1059.004_1\x01T1105")
	hunt, _ := Lookup("T1059.004")
	hunt.Source = "hunt:webshell"
	ev.Techniques = []audit.Technique{hunt}
	runEnrich(t, e, ev)
	want := []string{"T1059.004<hunt:webshell", "T1105<key:T1105"}
	if got := idSources(ev); !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestEnrichSkips(t *testing.T) {
	e := newEnricher(t, DefaultConfig())

	// A CONFIG_CHANGE record names the key of a rule being loaded.
	ev := &audit.Event{Records: []*audit.Record{
		plainRecord("CONFIG_CHANGE", 1305, "auid", "0", "ses", "1", "op", "add_rule", "key", "T1548.001_12", "list", "4", "res", "1"),
	}}
	runEnrich(t, e, ev)
	if len(ev.Techniques) != 0 {
		t.Errorf("CONFIG_CHANGE tagged: %q", idSources(ev))
	}

	// Verdict and alert documents are not audit events.
	ev = eventWithKeys("T1105")
	ev.Kind = audit.KindVerdict
	runEnrich(t, e, ev)
	if len(ev.Techniques) != 0 {
		t.Errorf("verdict tagged: %q", idSources(ev))
	}

	// A nil event and nil records do not panic.
	if err := e.Enrich(context.Background(), nil); err != nil {
		t.Error(err)
	}
	ev = eventWithKeys("T1105")
	ev.Records = append([]*audit.Record{nil}, ev.Records...)
	runEnrich(t, e, ev)
	if len(ev.Techniques) != 1 {
		t.Errorf("got %q, want T1105", idSources(ev))
	}

	// Disabled: nothing at all.
	cfg := DefaultConfig()
	cfg.Enabled = false
	off := newEnricher(t, cfg)
	ev = eventWithKeys("T1105")
	runEnrich(t, off, ev)
	if len(ev.Techniques) != 0 {
		t.Errorf("disabled enricher tagged: %q", idSources(ev))
	}
	if off.Name() != "attack" {
		t.Errorf("Name() = %q", off.Name())
	}
}

func TestEnrichCounters(t *testing.T) {
	var logBuf bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logBuf, nil)))
	defer slog.SetDefault(old)

	e := newEnricher(t, DefaultConfig())
	u0, d0, t0 := e.unknownTotal.Value(), e.deprecatedTotal.Value(), e.techniquesTotal.Value()
	for range 3 {
		runEnrich(t, e, eventWithKeys("T9999_1\x01T1043\x01T1059_T8888"))
	}
	// Logged once per distinct key, not per event.
	logs := logBuf.String()
	for _, s := range []string{"key=T9999_1 id=T9999", "key=T1059_T8888 id=T8888", "deprecated ATT&CK technique\" key=T1043 id=T1043"} {
		if n := strings.Count(logs, s); n != 1 {
			t.Errorf("log has %q %d times, want once:\n%s", s, n, logs)
		}
	}
	if got := e.unknownTotal.Value() - u0; got != 6 {
		t.Errorf("unknown ids counted %d, want 6", got)
	}
	if got := e.deprecatedTotal.Value() - d0; got != 3 {
		t.Errorf("deprecated ids counted %d, want 3", got)
	}
	if got := e.techniquesTotal.Value() - t0; got != 6 {
		t.Errorf("techniques counted %d, want 6 (T1043 and T1059, three times)", got)
	}
}

func TestConfigKeyMap(t *testing.T) {
	cfg := DefaultConfig()
	cfg.KeyMap = map[string][]string{
		"Recon":       {"T1016"},              // replaces the built-in entry
		"power":       {},                     // removes it
		"my_key":      {"t1059.004", "T1002"}, // adds one; revoked id allowed
		"T1105_extra": {"T1071"},              // replaces the id in the key
		"T1071":       {"T1556.003"},          // corrects a wrong id (bfuzzy1's /etc/pam.d/ watch)
		"T1078.001_1": {},                     // drops the id in the key
	}
	e := newEnricher(t, cfg)
	ev := eventWithKeys("recon\x01power\x01My_Key\x01T1105_extra\x01susp_shell\x01t1071\x01T1078.001_1\x01T1078.001_2")
	runEnrich(t, e, ev)
	want := []string{
		"T1016<key:recon",
		"T1059.004<key:My_Key", "T1560<key:My_Key",
		"T1071<key:T1105_extra",
		// susp_shell keeps its built-in T1059.004, already there from My_Key.
		"T1556.003<key:t1071",
		// T1078.001_1 gets nothing; T1078.001_2, not in the map, its own id.
		"T1078.001<key:T1078.001_2",
	}
	if got := idSources(ev); !reflect.DeepEqual(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
	// The built-in entries stay as they were for other Enrichers.
	if got := DefaultKeyMap()["recon"]; !reflect.DeepEqual(got, []string{"T1082", "T1033"}) {
		t.Errorf("DefaultKeyMap()[recon] = %q after an override", got)
	}
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		keyMap map[string][]string
		want   string // error substring, "" for valid
	}{
		{nil, ""},
		{map[string][]string{"a": {"T1059", " t1059.004 "}}, ""},
		{map[string][]string{"a": {}}, ""},
		{map[string][]string{"bad_key": {"T1059", "T9999"}}, `key_map["bad_key"]: "T9999" is not a technique id`},
		{map[string][]string{"k": {"TA0002"}}, `key_map["k"]: "TA0002"`},
		{map[string][]string{"k": {"T1059_1"}}, `key_map["k"]: "T1059_1"`},
		{map[string][]string{" ": {"T1059"}}, "empty key"},
		{map[string][]string{"Recon": {"T1059"}, "recon": {"T1016"}}, `key_map["recon"]: same key as "Recon"`},
		{map[string][]string{"a\x01b": {"T1059"}}, "separator"},
	}
	for _, c := range cases {
		cfg := Config{Enabled: true, KeyMap: c.keyMap}
		err := cfg.Validate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("Validate(%q): %v", c.keyMap, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("Validate(%q) = %v, want error containing %q", c.keyMap, err, c.want)
		}
		if _, nerr := New(cfg, nil); (nerr == nil) != (err == nil) {
			t.Errorf("New(%q) = %v, Validate = %v", c.keyMap, nerr, err)
		}
	}
	def := DefaultConfig()
	if !def.Enabled || len(def.KeyMap) != 0 || def.Validate() != nil {
		t.Errorf("DefaultConfig() = %+v", def)
	}
}

// The built-in map passes the same check as a user's map.
func TestDefaultKeyMapValid(t *testing.T) {
	cfg := Config{KeyMap: DefaultKeyMap()}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	for k, ids := range defaultKeyMap {
		if len(ids) == 0 {
			t.Errorf("%s: empty entry", k)
		}
		for _, id := range ids {
			if i := byID[id]; catalog[i].flags&(revoked|deprecated) != 0 {
				t.Errorf("%s: %s is revoked or deprecated; name its replacement", k, id)
			}
		}
	}
}

func TestConfigTOML(t *testing.T) {
	const doc = `
enabled = false
[key_map]
recon = ["T1016"]
"Inter-Process_Communication" = []
`
	cfg := DefaultConfig()
	md, err := toml.Decode(doc, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	if u := md.Undecoded(); len(u) != 0 {
		t.Fatalf("undecoded keys %v", u)
	}
	want := Config{Enabled: false, KeyMap: map[string][]string{"recon": {"T1016"}, "Inter-Process_Communication": {}}}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("decoded %+v, want %+v", cfg, want)
	}
}

// Many goroutines resolving new and cached keys at once (run with -race).
func TestEnrichConcurrent(t *testing.T) {
	e := newEnricher(t, DefaultConfig())
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 300 {
				key := fmt.Sprintf("T1548.001_%d", (i*7+g)%200)
				ev := eventWithKeys(key + "\x01recon")
				if err := e.Enrich(context.Background(), ev); err != nil {
					t.Error(err)
					return
				}
				if got := idSources(ev); len(got) != 3 || got[0] != "T1548.001<key:"+key {
					t.Errorf("%s: got %q", key, got)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := len(*e.cache.Load()); n != 201 {
		t.Errorf("cache holds %d keys, want 201", n)
	}
}

// Past the cache bound keys are still resolved, just not remembered.
func TestEnrichCacheBound(t *testing.T) {
	e := newEnricher(t, DefaultConfig())
	for i := range maxCachedKeys + 50 {
		key := fmt.Sprintf("T1105_%d", i)
		ev := eventWithKeys(key)
		runEnrich(t, e, ev)
		if got := idSources(ev); len(got) != 1 || got[0] != "T1105<key:"+key {
			t.Fatalf("%s: got %q", key, got)
		}
	}
	if n := len(*e.cache.Load()); n != maxCachedKeys {
		t.Errorf("cache holds %d keys, want %d", n, maxCachedKeys)
	}
}

// Once a key is cached, Enrich allocates nothing for an event whose keys
// name techniques through one key, and one slice when a second key adds
// more. The summary is set as the pool sets it.
func TestEnrichAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	e := newEnricher(t, DefaultConfig())
	for _, c := range []struct {
		keys []string
		want float64
	}{
		{[]string{"T1548.001_12", "(null)"}, 0},
		{[]string{"T1548.001_12\x01recon", "(null)"}, 1},
	} {
		ev := eventWithKeys(c.keys...)
		ev.Summary = audit.SummaryOf(ev)
		runEnrich(t, e, ev)
		n := testing.AllocsPerRun(200, func() {
			ev.Techniques = nil
			_ = e.Enrich(context.Background(), ev)
		})
		if n != c.want {
			t.Errorf("keys %q: Enrich allocates %.1f times per event with a warm cache, want %.0f", c.keys, n, c.want)
		}
	}
}

func BenchmarkEnrich(b *testing.B) {
	e := newEnricher(b, DefaultConfig())
	for _, bc := range []struct{ name, key string }{
		{"no_key", "(null)"},
		{"id_key", "T1548.001_12"},
		{"mapped_key", "recon"},
		{"three_keys", "T1548.001_12\x01recon\x01sysctl"},
		{"unmapped_key", "sysctl"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ev := eventWithKeys(bc.key)
			b.ReportAllocs()
			for b.Loop() {
				ev.Techniques = nil // as on a fresh event
				if err := e.Enrich(context.Background(), ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestKeyMapWarnings: check-config is told about key_map entries that
// change nothing, and only about those.
func TestKeyMapWarnings(t *testing.T) {
	cfg := Config{KeyMap: map[string][]string{
		"no_such_key": {},            // nothing to remove: warned
		"power":       {},            // removes a built-in entry
		"T1078.001_1": {},            // drops an id in the key
		"my_key":      {"T1059.004"}, // adds
	}}
	want := []string{`attack: key_map["no_such_key"] = [] changes nothing: the key carries no technique id and has no built-in entry`}
	if got := cfg.Warnings(); !reflect.DeepEqual(got, want) {
		t.Errorf("warnings %q, want %q", got, want)
	}
}
