package attack

import (
	"bufio"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
)

// ruleKeys returns the distinct keys that an auditctl rule file sets, in
// file order: the word after -k and the value of -F key=. Lines are split
// on spaces only, as auditctl splits them, so a tab stays in the key.
// Commented lines are skipped.
func ruleKeys(t *testing.T, name string) []string {
	t.Helper()
	// The two public rule sets live in ../shared/rules; without the shared
	// checkout the test skips.
	f, err := os.Open(filepath.Join(testsupport.SharedDir(t, "rules"), name))
	if err != nil {
		t.Fatalf("rule set missing from the shared checkout: %v", err)
	}
	defer f.Close()
	var keys []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		var tok []string
		for w := range strings.SplitSeq(line, " ") {
			if w != "" {
				tok = append(tok, w)
			}
		}
		for i := 0; i < len(tok); i++ {
			var k string
			switch {
			case tok[i] == "-k" && i+1 < len(tok):
				k = tok[i+1]
				i++
			case tok[i] == "-F" && i+1 < len(tok) && strings.HasPrefix(tok[i+1], "key="):
				k = strings.TrimPrefix(tok[i+1], "key=")
				i++
			default:
				continue
			}
			if !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return keys
}

// What a reader expects, written down without the code under test.
var (
	// An id stands alone in the key: T or t, four digits, optionally a dot
	// and three digits, with no letter or digit on either side.
	reExpectID = regexp.MustCompile(`(?i)(?:^|[^a-z0-9])(t[0-9]{4}(?:\.[0-9]{3})?)(?:[^a-z0-9]|$)`)

	// Ids these rule sets use that ATT&CK v18.1 revoked, with the
	// replacement it names.
	expectRevoked = map[string]string{
		"T1002":     "T1560",     // Data Compressed → Archive Collected Data
		"T1053.001": "T1053.002", // At (Linux) → At
	}

	// Every key of the two sets that carries no id, with the techniques the
	// built-in key map should give it (nil: none). Keys are lower case.
	expectNoID = map[string][]string{
		// Self-auditing (both sets).
		"auditlog":     nil, // routine activity: left out (keymap.go)
		"auditconfig":  {"T1562.012"},
		"audispconfig": {"T1562.012"},
		"audittools":   {"T1562.012"},
		// Exclusions (-a never) and agent noise filters: no technique.
		"sharedmemaccess": nil,
		"locklvm":         nil,
		"filebeat":        nil,
		"sysctl":          nil,
		"modules":         {"T1547.006"},
		"modprobe":        {"T1547.006"},
		"kexec":           nil,
		"specialfiles":    nil,
		"mount":           nil,
		"swap":            nil,
		"time":            nil,
		"localtime":       nil,
		"stunnel":         nil,
		"cron":            {"T1053.003"},
		"etcgroup":        {"T1098"},
		"etcpasswd":       {"T1003.008", "T1136.001"},
		"opasswd":         nil,
		"actions":         {"T1548.003"},
		// passwd, groupadd..., useradd...
		"passwd_modification":   {"T1098"},
		"group_modification":    {"T1098"},
		"user_modification":     {"T1136.001", "T1098"},
		"login":                 nil,
		"network_modifications": nil,
		"remote_shell":          {"T1059.004"},
		"network_connect_4":     nil,
		"network_connect_6":     nil,
		"network":               nil,
		"etcissue":              nil,
		"init":                  {"T1037.004"},
		"libpath":               {"T1574.006"},
		"systemwide_preloads":   {"T1574.006"},
		"pam":                   {"T1556.003"},
		"mail":                  nil,
		"sshd":                  nil,
		"rootkey":               {"T1098.004"},
		"systemd":               {"T1543.002"},
		"systemd_generator":     {"T1543.002"},
		"mac_policy":            {"T1562.001"},
		"unauthedfileaccess":    nil,
		"priv_esc":              {"T1548"},
		"power":                 {"T1529"},
		"session":               nil,
		"perm_mod":              nil, // routine activity: left out (keymap.go)
		"recon":                 {"T1082", "T1033"},
		"susp_activity":         {"T1105"},
		"data_compressed":       nil, // routine activity: left out (keymap.go)
		"sbin_susp":             nil,
		"dbus_send":             {"T1068"},
		"gdubs_call":            {"T1068"},
		"pkexec":                {"T1068"},
		// Neo23x0 lines 487-488: "-k -F T1078_Valid_Accounts" makes the
		// key "-F"; the id after it is not part of the key.
		"-f":                          nil,
		"susp_shell":                  {"T1059.004"},
		"detect_execve_www":           {"T1505.003"},
		"shell_profiles":              {"T1546.004"},
		"code_injection":              {"T1055.008"},
		"data_injection":              {"T1055.008"},
		"register_injection":          {"T1055.008"},
		"tracing":                     {"T1055.008"},
		"anon_file_create":            {"T1620"},
		"power_abuse":                 nil,
		"network_socket_created":      nil,
		"software_mgmt":               nil,
		"third_party_software_mgmt":   {"T1072"},
		"puppet_ssl":                  nil,
		"soft_besclient":              {"T1072"},
		"soft_chef":                   {"T1072"},
		"soft_salt":                   {"T1072"},
		"soft_otter":                  {"T1072"},
		"string_search":               nil, // routine activity: left out (keymap.go)
		"falcon_sensor_update":        nil,
		"falcon_sensor":               nil,
		"falcon_agent":                nil,
		"crowdstrike_network":         nil,
		"docker":                      nil,
		"qemu-system-x86_64":          {"T1564.006"},
		"qemu-img":                    {"T1564.006"},
		"qemu-kvm":                    {"T1564.006"},
		"qemu":                        {"T1564.006"},
		"virtualbox":                  {"T1564.006"},
		"virt-manager":                {"T1564.006"},
		"vboxmanage":                  {"T1564.006"},
		"kubelet":                     nil,
		"inter-process_communication": {"T1559"},
		"rootcmd":                     nil,
		"delete":                      nil, // routine activity: left out (keymap.go)
		"file_access":                 nil,
		"file_creation":               nil,
		"file_modification":           nil,
		"32bit_abi":                   nil,
	}
)

// expect returns the technique ids a reader expects for key, in order: the
// ids written in it (revocations applied), then the key map's.
func expect(t *testing.T, key string) []string {
	t.Helper()
	var want []string
	add := func(id string) {
		if !slices.Contains(want, id) {
			want = append(want, id)
		}
	}
	for _, m := range reExpectID.FindAllStringSubmatch(key, -1) {
		id := strings.ToUpper(m[1])
		if r, ok := expectRevoked[id]; ok {
			id = r
		}
		add(id)
	}
	mapped, listed := expectNoID[strings.ToLower(strings.TrimSpace(key))]
	if len(want) == 0 && !listed {
		t.Fatalf("key %q has no id and no entry in expectNoID: decide what it should give", key)
	}
	for _, id := range mapped {
		add(id)
	}
	return want
}

func checkRuleSet(t *testing.T, name string, wantKeys, wantWithID int) {
	keys := ruleKeys(t, name)
	withID := 0
	for _, k := range keys {
		if reExpectID.MatchString(k) {
			withID++
		}
	}
	if len(keys) != wantKeys || withID != wantWithID {
		t.Errorf("%s: %d distinct keys, %d with an id; want %d and %d", name, len(keys), withID, wantKeys, wantWithID)
	}

	e := newEnricher(t, DefaultConfig())
	var all []string
	for _, k := range keys {
		want := expect(t, k)
		ev := eventWithKeys(k)
		runEnrich(t, e, ev)
		var got []string
		for _, te := range ev.Techniques {
			got = append(got, te.ID)
			if te.Source != "key:"+strings.TrimSpace(k) {
				t.Errorf("%s: key %q: Source %q", name, k, te.Source)
			}
			if ref, ok := Lookup(te.ID); !ok || te.Name != ref.Name || te.Reference != ref.Reference || len(te.Tactics) == 0 {
				t.Errorf("%s: key %q: technique %+v differs from the catalog", name, k, te)
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: key %q: got %q, want %q", name, k, got, want)
		}
		if got := ParseKey(k); len(got) == 0 && reExpectID.MatchString(k) {
			t.Errorf("%s: ParseKey(%q) found no id", name, k)
		}
		for _, id := range want {
			if !slices.Contains(all, id) {
				all = append(all, id)
			}
		}
	}

	// All keys of the set on one record, as a multi-key rule logs them.
	ev := eventWithKeys(strings.Join(keys, string(KeySeparator)))
	runEnrich(t, e, ev)
	var got []string
	for _, te := range ev.Techniques {
		got = append(got, te.ID)
	}
	if !reflect.DeepEqual(got, all) {
		t.Errorf("%s: all keys on one record: got %q\nwant %q", name, got, all)
	}
}

// bfuzzy1/auditd-attack: ids at the start of the key with an index suffix,
// plus Deobfuscate_T1140 and a few self-auditing keys.
func TestRuleSetBfuzzy1(t *testing.T) {
	checkRuleSet(t, "bfuzzy1-auditd-attack.rules", 283, 276)
}

// Neo23x0/auditd: free-form keys, one with an id (T1078_Valid_Accounts) and
// the broken "-F" key. (The reference notes count 95 because they list a
// "vm" key; the file has none: "-kvm" only occurs inside "qemu-kvm".)
func TestRuleSetNeo23x0(t *testing.T) {
	checkRuleSet(t, "neo23x0-audit.rules", 94, 1)
}

// Every key the expectation table lists occurs in one of the rule sets, so
// the table holds no stale entries.
func TestExpectationTableMatchesRuleSets(t *testing.T) {
	seen := map[string]bool{}
	for _, name := range []string{"bfuzzy1-auditd-attack.rules", "neo23x0-audit.rules"} {
		for _, k := range ruleKeys(t, name) {
			seen[strings.ToLower(strings.TrimSpace(k))] = true
		}
	}
	for k := range expectNoID {
		if !seen[k] {
			t.Errorf("expectNoID lists %q, which neither rule set uses", k)
		}
	}
	// The built-in map covers only keys of the rule sets and agrees with the
	// table (the table is the specification).
	for k, ids := range defaultKeyMap {
		if want, ok := expectNoID[strings.ToLower(k)]; !ok || !reflect.DeepEqual(ids, want) {
			t.Errorf("defaultKeyMap[%q] = %q, table says %q", k, ids, want)
		}
	}
}
