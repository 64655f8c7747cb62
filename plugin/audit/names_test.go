package audit

import (
	"slices"
	"strings"
	"testing"
)

// TestLookupName: every interned name maps to its id and back, names
// outside the table (and near misses of the ones in it) to 0, and the
// names written as untrusted strings are the ones auparse lists.
func TestLookupName(t *testing.T) {
	if len(knownNames) > 255 {
		t.Fatalf("%d interned names: NameID holds 255", len(knownNames))
	}
	for i, n := range knownNames {
		id := NameID(i + 1)
		if got := LookupName(n.name); got != id || id.Name() != n.name {
			t.Errorf("LookupName(%q) = %d, want %d (%q)", n.name, got, id, id.Name())
		}
		for _, miss := range []string{n.name + "x", n.name[:len(n.name)-1], strings.ToUpper(n.name[:1]) + n.name[1:] + "_"} {
			if got := LookupName(miss); got != 0 && got.Name() != miss {
				t.Errorf("LookupName(%q) = %d (%q)", miss, got, got.Name())
			}
		}
	}
	for _, s := range []string{"", "a8", "a10", "cap_fp2", "nlnk-fam", "a_very_long_field_name_indeed"} {
		if got := LookupName(s); got != 0 {
			t.Errorf("LookupName(%q) = %d, want 0", s, got)
		}
	}
	untrusted := []string{"path", "comm", "exe", "file", "name", "watch", "cwd", "cmd", "acct", "dir",
		"key", "vm", "ocomm", "grp", "new_group", "sw", "root_dir", "proctitle", "data",
		"dev", "old_chardev", "new_chardev", "cgroup", "hostname", "terminal"}
	for _, n := range knownNames {
		if got := n.flags&nameFlagUntrusted != 0; got != slices.Contains(untrusted, n.name) {
			t.Errorf("%s untrusted = %v", n.name, got)
		}
	}
	for _, n := range untrusted {
		if LookupName(n) == 0 {
			t.Errorf("untrusted name %s is not interned", n)
		}
	}
}

// TestNameIDs: the parser's interned names on real records, through a
// slab change in the middle of a record, and the fallbacks of records
// made by hand.
func TestNameIDs(t *testing.T) {
	var p Parser
	line := `type=SYSCALL msg=audit(1.000:1): arch=c000003e syscall=59 a0=1 comm="x" exe="/bin/x" key=(null) nlnk-fam=16` +
		"\x1dARCH=x86_64 SYSCALL=execve"
	for range 200 { // 200 × 9 fields: the slab's fields fill up mid-record
		r, err := p.Parse(line)
		if err != nil {
			t.Fatal(err)
		}
		checkNameIDs(t, r)
		if v, ok := r.GetInterpID(LookupName("SYSCALL")); v != "execve" || !ok {
			t.Fatalf("GetInterpID(SYSCALL) = %q %v", v, ok)
		}
		if _, ok := r.GetID(LookupName("SYSCALL")); ok {
			t.Fatal("GetID(SYSCALL) found an ENRICHED field")
		}
		if r.NameMask()&NameID(0).Bit() == 0 {
			t.Fatal("no bit 0 for nlnk-fam")
		}
	}
	u, err := p.Parse(`type=USER_CMD msg=audit(1.000:2): pid=1 msg='cwd="/" cmd=6C73 res=success'`)
	if err != nil {
		t.Fatal(err)
	}
	checkNameIDs(t, u)
	if v, _ := u.GetID(LookupName("cmd")); v != "ls" {
		t.Fatalf("nested cmd = %q", v)
	}
	hand := &Record{Fields: []Field{{Name: "exe", Value: "/bin/sh"}}}
	if hand.Refs() != nil || hand.NameMask() != ^uint64(0) {
		t.Fatal("a record made by hand claims interned names")
	}
	if v, ok := hand.GetID(LookupName("exe")); v != "/bin/sh" || !ok {
		t.Fatalf("GetID on a record made by hand = %q %v", v, ok)
	}
	if (&Record{}).NameMask() != 0 {
		t.Fatal("an empty record has names")
	}
}
