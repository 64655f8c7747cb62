package audit

import (
	"strings"
	"testing"
	"time"
)

func TestParseHeader(t *testing.T) {
	cases := []struct {
		line             string
		node, typ        string
		num              uint16
		sec              int64
		msec             uint16
		serial           uint32
		nfields, ninterp int
		irregular        bool
	}{
		{"type=EOE msg=audit(1700000000.123:456): ", "", "EOE", 1320, 1700000000, 123, 456, 0, 0, false},
		{"type=EOE msg=audit(1700000000.123:456):", "", "EOE", 1320, 1700000000, 123, 456, 0, 0, false},
		{"node=h1 type=PROCTITLE msg=audit(1.001:4294967295): proctitle=\"bash\"", "h1", "PROCTITLE", 1327, 1, 1, 4294967295, 1, 0, false},
		{"type=UNKNOWN[1420] msg=audit(1731000000.000:42): ipe_op=EXECUTE", "", "UNKNOWN[1420]", 1420, 1731000000, 0, 42, 1, 0, false},
		{"type=UNKNOWN[99999] msg=audit(1.000:1): a=1", "", "UNKNOWN[99999]", 0, 1, 0, 1, 1, 0, false},
		{"type=NOT_A_TYPE msg=audit(1.000:1): a=1", "", "NOT_A_TYPE", 0, 1, 0, 1, 1, 0, false},
		{"type=CWD msg=audit(1170021493.977:293):  cwd=\"/var/spool/postfix\"", "", "CWD", 1307, 1170021493, 977, 293, 1, 0, true},
		{"type=SYSCALL msg=audit(1.000:1): arch=c000003e key=(null)\x1dARCH=x86_64 SYSCALL=execve", "", "SYSCALL", 1300, 1, 0, 1, 2, 2, false},
		{"type=SYSCALL msg=audit(1.000:1): a=1  b=2", "", "SYSCALL", 1300, 1, 0, 1, 2, 0, true},
		{"type=SYSCALL msg=audit(1.000:1): a=1 junk b=2", "", "SYSCALL", 1300, 1, 0, 1, 2, 0, true},
		{"type=SYSCALL msg=audit(1.000:1): a=1 ", "", "SYSCALL", 1300, 1, 0, 1, 1, 0, true},
		{"type=SYSCALL msg=audit(1.000:1):a=1", "", "SYSCALL", 1300, 1, 0, 1, 1, 0, true},
		// auditd 2.x daemon records: no colon after the stamp, free text, then fields
		{"type=DAEMON_CONFIG msg=audit(1490239800.477:34) config changed, auid=0 pid=1512 subj=system_u:system_r:auditd_t:s0 res=success", "", "DAEMON_CONFIG", 1203, 1490239800, 477, 34, 4, 0, true},
		{"type=DAEMON_END msg=audit(1490239800.477:35) a=1", "", "DAEMON_END", 1201, 1490239800, 477, 35, 1, 0, true},
		{"type=DAEMON_END msg=audit(1490239800.477:35)", "", "DAEMON_END", 1201, 1490239800, 477, 35, 0, 0, true},
	}
	var p Parser
	for _, c := range cases {
		r, err := p.Parse(c.line)
		if err != nil {
			t.Errorf("%q: %v", c.line, err)
			continue
		}
		if r.Node != c.node || r.Type != c.typ || r.TypeNum != c.num || r.Sec != c.sec || r.Msec != c.msec || r.Serial != c.serial {
			t.Errorf("%q: got node=%q type=%q/%d %d.%03d:%d", c.line, r.Node, r.Type, r.TypeNum, r.Sec, r.Msec, r.Serial)
		}
		if len(r.Fields) != c.nfields || len(r.Interp) != c.ninterp || r.Irregular != c.irregular {
			t.Errorf("%q: %d fields, %d interp, irregular=%v; want %d, %d, %v", c.line, len(r.Fields), len(r.Interp), r.Irregular, c.nfields, c.ninterp, c.irregular)
		}
		if r.Line != c.line {
			t.Errorf("%q: Line = %q", c.line, r.Line)
		}
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct{ line, reason string }{
		{"", "no_type"},
		{"garbage", "no_type"},
		{"node=onlynode", "truncated"},
		{"type=SYSCALL", "truncated"},
		{"type= msg=audit(1.000:1): a=1", "truncated"},
		{"type=SYSCALL msg=foo", "no_msg"},
		{"type=SYSCALL audit(1.000:1): a=1", "no_msg"},
		{"type=SYSCALL msg=audit(1.00:1): a=1", "bad_timestamp"},
		{"type=SYSCALL msg=audit(1.0000:1): a=1", "bad_timestamp"},
		{"type=SYSCALL msg=audit(.000:1): a=1", "bad_timestamp"},
		{"type=SYSCALL msg=audit(1.000:): a=1", "bad_timestamp"},
		{"type=SYSCALL msg=audit(1.000:4294967296): a=1", "bad_timestamp"},
		{"type=SYSCALL msg=audit(1.000:1)a=1", "bad_timestamp"},
		{"type=SYSCALL msg=audit(1.000:1);", "bad_timestamp"},
		{"type=SYSCALL msg=audit(1.000:1", "bad_timestamp"},
		{"type=SYSCALL msg=audit(12345678901234567890.000:1): a=1", "bad_timestamp"},
		// Cut short inside a quoted value (auditd died mid-write, a log
		// still being written): the value would be made up.
		{`type=SYSCALL msg=audit(1700000000.000:9): arch=c000003e syscall=59 success=yes exit=0 ppid=1 pid=2 uid=0 comm="bash" exe="/usr/bin/ba`, "truncated"},
		{`type=USER_CMD msg=audit(1.000:1): pid=1 uid=0 msg='cwd="/root" cmd=6C73 res=succ`, "truncated"},
		{"type=SOCKADDR msg=audit(1.000:1): saddr=0200\x1dSADDR={ saddr_fam=inet laddr=1.2", "truncated"},
		{"type=SYSCALL msg=audit(1.000:1): comm=\"a\"\x1dARCH=x86_64 UID=\"ro", "truncated"},
	}
	var p Parser
	for _, c := range cases {
		r, err := p.Parse(c.line)
		if err == nil {
			t.Errorf("%q: accepted as %+v", c.line, r)
			continue
		}
		if got := Reason(err); got != c.reason {
			t.Errorf("%q: reason %q (%v), want %q", c.line, got, err, c.reason)
		}
		if !strings.Contains(err.Error(), c.reason) {
			t.Errorf("%q: error %q does not name its reason", c.line, err)
		}
	}
}

func TestParseValues(t *testing.T) {
	type fv struct {
		name, raw, value string
		enc              Encoding
	}
	cases := []struct {
		line   string
		fields []fv
		interp []fv
	}{
		{ // the ENRICHED tail never leaks into an unquoted last field
			"type=SYSCALL msg=audit(1.000:1): tty=(none) key=(null)\x1dARCH=x86_64 AUID=\"unset\"",
			[]fv{{"tty", "(none)", "(none)", Bare}, {"key", "(null)", "(null)", Bare}},
			[]fv{{"ARCH", "x86_64", "x86_64", Bare}, {"AUID", `"unset"`, "unset", Quoted}},
		},
		{ // untrusted names: quoted, upper hex, sentinel; other names never hex
			`type=SYSCALL msg=audit(1.000:1): comm=41204220 exe="/bin/x" name=(null) a0=4142 arch=C000003E cwd=abcd file=ABC`,
			[]fv{{"comm", "41204220", "A B ", Hex}, {"exe", `"/bin/x"`, "/bin/x", Quoted}, {"name", "(null)", "(null)", Bare},
				{"a0", "4142", "4142", Bare}, {"arch", "C000003E", "C000003E", Bare}, {"cwd", "abcd", "abcd", Bare}, {"file", "ABC", "ABC", Bare}},
			nil,
		},
		{ // EXECVE: aN hex, aN_len not, aN[i] hex
			`type=EXECVE msg=audit(1.000:1): argc=2 a0="sh" a1_len=8 a1[0]=4142 a1[1]=4344`,
			[]fv{{"argc", "2", "2", Bare}, {"a0", `"sh"`, "sh", Quoted}, {"a1_len", "8", "8", Bare}, {"a1[0]", "4142", "AB", Hex}, {"a1[1]", "4344", "CD", Hex}},
			nil,
		},
		{ // multi-key hex with 0x01 separators, invalid UTF-8 from hex kept as bytes
			`type=SYSCALL msg=audit(1.000:1): key=6B31016B32 comm=FF00`,
			[]fv{{"key", "6B31016B32", "k1\x01k2", Hex}, {"comm", "FF00", "\xff\x00", Hex}},
			nil,
		},
		{ // a forged 0x1D inside a quoted value stays in the value
			"type=SYSCALL msg=audit(1.000:1): comm=\"a\x1dUID=x\" exe=\"/b\"",
			[]fv{{"comm", "\"a\x1dUID=x\"", "a\x1dUID=x", Quoted}, {"exe", `"/b"`, "/b", Quoted}},
			nil,
		},
		{ // ENRICHED SADDR keeps its braces; hex uid names are decoded
			"type=SOCKADDR msg=audit(1.000:1): saddr=0200\x1dSADDR={ saddr_fam=inet laddr=1.2.3.4 lport=22 } UID=6120622062",
			[]fv{{"saddr", "0200", "0200", Bare}},
			[]fv{{"SADDR", "{ saddr_fam=inet laddr=1.2.3.4 lport=22 }", "{ saddr_fam=inet laddr=1.2.3.4 lport=22 }", Bare}, {"UID", "6120622062", "a b b", Hex}},
		},
	}
	var p Parser
	for _, c := range cases {
		r, err := p.Parse(c.line)
		if err != nil {
			t.Fatalf("%q: %v", c.line, err)
		}
		check := func(what string, got []Field, want []fv) {
			if len(got) != len(want) {
				t.Errorf("%q: %d %s, want %d: %+v", c.line, len(got), what, len(want), got)
				return
			}
			for i, w := range want {
				g := got[i]
				if g.Name != w.name || g.Raw != w.raw || g.Value != w.value || g.Enc != w.enc {
					t.Errorf("%q: %s[%d] = {%q %q %q %d}, want {%q %q %q %d}", c.line, what, i, g.Name, g.Raw, g.Value, g.Enc, w.name, w.raw, w.value, w.enc)
				}
			}
		}
		check("fields", r.Fields, c.fields)
		check("interp", r.Interp, c.interp)
		if r.Irregular {
			t.Errorf("%q: marked irregular", c.line)
		}
	}
}

// TestParseHexNames: the names whose hex values are decoded are auparse's
// (auparse/typetab.h): libvirt's hyphenated device names and AppArmor's
// profile are decoded; hostname and terminal, which libaudit writes as
// given, are not, even when they look like hex (a host called DC01).
func TestParseHexNames(t *testing.T) {
	cases := []struct {
		line, name, want string
		enc              Encoding
	}{
		{`type=VIRT_RESOURCE msg=audit(1.000:20): pid=1 uid=0 auid=4294967295 ses=4294967295 msg='virt=kvm resrc=disk reason=start vm="guest" uuid=1-2 old-disk="?" new-disk=2F7661722F6C69622F6D7920696D616765732F612E71636F7732 exe="/usr/sbin/libvirtd" hostname=? addr=? terminal=? res=success'`,
			"new-disk", "/var/lib/my images/a.qcow2", Hex},
		{`type=VIRT_RESOURCE msg=audit(1.000:21): pid=1 uid=0 auid=4294967295 ses=4294967295 msg='virt=kvm resrc=chardev reason=start vm="guest" uuid=1-2 old-chardev="?" new-chardev=2F6465762F7474792053 exe="/usr/sbin/libvirtd" hostname=? addr=? terminal=? res=success'`,
			"new-chardev", "/dev/tty S", Hex},
		{`type=AVC msg=audit(1.000:23): apparmor="DENIED" operation="open" profile=2F6F70742F4D79204170702F62696E name="/etc/shadow" pid=5 comm="app" requested_mask="r" denied_mask="r" fsuid=0 ouid=0`,
			"profile", "/opt/My App/bin", Hex},
		{`type=USER_LOGIN msg=audit(1.000:22): pid=1 uid=0 auid=1000 ses=3 msg='op=login id=1000 exe="/usr/sbin/sshd" hostname=DC01 addr=10.1.2.3 terminal=/dev/pts/1 res=success'`,
			"hostname", "DC01", Bare},
		{`type=USER_LOGIN msg=audit(1.000:24): pid=1 uid=0 auid=1000 ses=3 msg='op=login id=1000 exe="/usr/sbin/sshd" hostname=? addr=? terminal=ABCD res=success'`,
			"terminal", "ABCD", Bare},
	}
	var p Parser
	for _, c := range cases {
		r, err := p.Parse(c.line)
		if err != nil {
			t.Fatalf("%q: %v", c.line, err)
		}
		found := false
		for _, f := range r.Fields {
			if f.Name == c.name {
				found = true
				if f.Value != c.want || f.Enc != c.enc {
					t.Errorf("%s = %q (enc %d), want %q (enc %d)", c.name, f.Value, f.Enc, c.want, c.enc)
				}
			}
		}
		if !found {
			t.Errorf("%q: no field %s", c.line, c.name)
		}
	}
}

func TestParseNested(t *testing.T) {
	var p Parser
	line := "type=USER_AUTH msg=audit(1.000:7): pid=1 uid=0 auid=4294967295 ses=4294967295 msg='op=PAM:authentication grantors=? acct=6261642075736572 exe=\"/usr/sbin/sshd\" hostname=? res=failed'\x1dUID=\"root\" AUID=\"unset\""
	r, err := p.Parse(line)
	if err != nil {
		t.Fatal(err)
	}
	if r.NestedFrom != 5 {
		t.Fatalf("NestedFrom = %d, want 5 (after pid uid auid ses msg)", r.NestedFrom)
	}
	want := map[string]string{"op": "PAM:authentication", "grantors": "?", "acct": "bad user", "exe": "/usr/sbin/sshd", "hostname": "?", "res": "failed"}
	nested := r.Fields[r.NestedFrom:]
	if len(nested) != len(want) {
		t.Fatalf("nested fields %+v", nested)
	}
	for _, f := range nested {
		if want[f.Name] != f.Value {
			t.Errorf("nested %s = %q, want %q", f.Name, f.Value, want[f.Name])
		}
	}
	if v, _ := r.Get("msg"); !strings.HasPrefix(v, "op=PAM") {
		t.Errorf("outer msg value %q", v)
	}
	if len(r.Interp) != 2 {
		t.Errorf("interp %+v", r.Interp)
	}
	// A kernel record is not user-space: its msg is not expanded.
	r, _ = p.Parse("type=SYSCALL msg=audit(1.000:8): msg='a=1 b=2'")
	if r.NestedFrom != -1 || len(r.Fields) != 1 {
		t.Errorf("SYSCALL msg expanded: NestedFrom=%d fields=%+v", r.NestedFrom, r.Fields)
	}
}

// TestParseRecordsStayValid checks that records handed out earlier are not
// overwritten by later parses (the slabs are never reused).
func TestParseRecordsStayValid(t *testing.T) {
	var p Parser
	var recs []*Record
	for i := 0; i < 3*slabRecords; i++ {
		r, err := p.Parse("type=SYSCALL msg=audit(1.000:" + itoa(i) + "): comm=" + strings.ToUpper(hexOf("c"+itoa(i))))
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	for i, r := range recs {
		if v, _ := r.Get("comm"); v != "c"+itoa(i) || r.Serial != uint32(i) {
			t.Fatalf("record %d now has serial %d comm %q", i, r.Serial, v)
		}
	}
}

// Records whose fields straddle the end of a field slab (plain fields, a
// user-space record's nested msg fields, an ENRICHED tail, one record
// larger than a slab) keep every field, and appending to one record's
// fields never changes the next record's.
func TestParseFieldsAcrossSlabs(t *testing.T) {
	var p Parser
	type want struct {
		r      *Record
		n      int
		nested int
		interp int
	}
	var got []want
	for i := 0; i < 2*slabFields; i++ {
		n := 1 + i%13
		var b strings.Builder
		switch i % 3 {
		case 0:
			b.WriteString("type=SYSCALL msg=audit(1.000:" + itoa(i) + "):")
			for k := 0; k < n; k++ {
				b.WriteString(" f" + itoa(k) + "=" + itoa(i))
			}
			b.WriteString("\x1dUID=\"root\" AUID=\"u" + itoa(i) + "\"")
			got = append(got, want{n: n, nested: -1, interp: 2})
		case 1:
			b.WriteString("type=USER_CMD msg=audit(1.000:" + itoa(i) + "): pid=1 msg='")
			for k := 0; k < n; k++ {
				b.WriteString(" f" + itoa(k) + "=" + itoa(i))
			}
			b.WriteString("'")
			got = append(got, want{n: 2 + n, nested: 2})
		default:
			b.WriteString("type=EXECVE msg=audit(1.000:" + itoa(i) + "): argc=" + itoa(n))
			for k := 0; k < n; k++ {
				b.WriteString(" f" + itoa(k) + "=" + itoa(i))
			}
			got = append(got, want{n: 1 + n, nested: -1})
		}
		if i == slabFields+7 { // one record bigger than a whole slab
			b.Reset()
			b.WriteString("type=EXECVE msg=audit(1.000:" + itoa(i) + "): argc=1")
			for k := 0; k < slabFields+100; k++ {
				b.WriteString(" f" + itoa(k) + "=" + itoa(i))
			}
			got[len(got)-1] = want{n: slabFields + 101, nested: -1}
		}
		r, err := p.Parse(b.String())
		if err != nil {
			t.Fatal(err)
		}
		got[len(got)-1].r = r
	}
	for i, w := range got {
		r := w.r
		if len(r.Fields) != w.n || r.NestedFrom != w.nested || len(r.Interp) != w.interp || cap(r.Fields) != len(r.Fields) {
			t.Fatalf("record %d: %d fields (cap %d), nested from %d, %d interp; want %d, %d, %d",
				i, len(r.Fields), cap(r.Fields), r.NestedFrom, len(r.Interp), w.n, w.nested, w.interp)
		}
		for _, f := range r.Fields {
			if f.Name[0] == 'f' && f.Value != itoa(i) {
				t.Fatalf("record %d: field %s=%q", i, f.Name, f.Value)
			}
		}
		if w.interp > 0 {
			if v, _ := r.GetInterp("AUID"); v != "u"+itoa(i) {
				t.Fatalf("record %d: AUID %q", i, v)
			}
		}
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

func hexOf(s string) string {
	const h = "0123456789abcdef"
	var b []byte
	for i := 0; i < len(s); i++ {
		b = append(b, h[s[i]>>4], h[s[i]&15])
	}
	return string(b)
}

// TestParseNoHang: tokens that start with '=' and a 0x1D inside the
// ENRICHED tail used to loop forever (found by FuzzParse).
func TestParseNoHang(t *testing.T) {
	lines := []string{
		"type=SYSCALL msg=audit(1.000:1): =x",
		"type=SYSCALL msg=audit(1.000:1): a=1 =",
		"type=SYSCALL msg=audit(1.000:1): a=1  =success b=2",
		"type=SYSCALL msg=audit(1.000:1): a=1\x1dA=1 \x1dB=2",
		"type=SYSCALL msg=audit(1.000:1): a=1\x1dUID=\"r\"\x1d",
		"type=SYSCALL msg=audit(1.000:1): a=1\x1d=\x1d=",
		"type=USER msg=audit(1.000:1): msg='=x =y'",
	}
	for _, l := range lines {
		done := make(chan *Record, 1)
		go func() {
			var p Parser
			r, _ := p.Parse(l)
			done <- r
		}()
		select {
		case r := <-done:
			// (irregular nested text is kept in raw.msg, so it need not
			// mark the record)
			if r == nil || !r.Irregular && r.TypeNum != 1005 {
				t.Errorf("%q: record %+v, want an irregular record", l, r)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("Parse(%q) does not return", l)
		}
	}
}
