package audit

import (
	"strings"
	"testing"
)

// Regression tests for defects found by replaying audit logs written by
// other people's machines (laurel's and go-libaudit's test data, DARPA's
// IMA README, Android logcat, SELinux notes). Each uses the real lines.

// summarizeLines parses lines (one event) and returns its summary.
func summarizeLines(t *testing.T, lines ...string) *Summary {
	t.Helper()
	var p Parser
	ev := &Event{}
	for _, l := range lines {
		r, err := p.Parse(l)
		if err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		ev.Records = append(ev.Records, r)
	}
	var s Summary
	Summarize(ev, &s)
	return &s
}

// TestIntegrityPolicyOutcome: an IMA policy record (DARPA Fd-IMA README,
// RHEL 7) carries res= and no success=; Summarize read only success= for
// INTEGRITY_RULE, so the event had no outcome although docs/schema.md
// says the outcome falls back to res= of an integrity record.
func TestIntegrityPolicyOutcome(t *testing.T) {
	const policy = `type=INTEGRITY_RULE msg=audit(1585509232.084:289): action="audit" func="BPRM_CHECK" mask="MAY_EXEC" res=1`
	const hash = `type=INTEGRITY_RULE msg=audit(1585509232.075:292): file="/usr/bin/pkla-check-authorization" hash="533aab6a68d00e7e01611d31acb798c6fc843406" ppid=680 pid=12410 auid=4294967295 uid=999 gid=998 euid=999 suid=999 fsuid=999 egid=998 sgid=998 fsgid=998 tty=(none) ses=4294967295 comm="polkitd" exe="/usr/lib/polkit-1/polkitd" subj=system_u:system_r:policykit_t:s0`
	const sysFail = `type=SYSCALL msg=audit(1585509232.084:289): arch=c000003e syscall=1 success=no exit=-22 a0=3 a1=1 a2=2 a3=0 items=0 ppid=1 pid=7 auid=0 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts0 ses=1 comm="cat" exe="/usr/bin/cat" key=(null)`
	cases := []struct {
		name  string
		lines []string
		want  string
	}{
		{"policy rule res=1", []string{policy}, "success"},
		{"policy rule res=0", []string{strings.Replace(policy, "res=1", "res=0", 1)}, "failure"},
		{"INTEGRITY_POLICY_RULE res=0", []string{`type=INTEGRITY_POLICY_RULE msg=audit(1795454964.664:9): action=audit func=BPRM_CHECK mask=MAY_EXEC res=0`}, "failure"},
		// success= of the SYSCALL still comes first, wherever it is
		{"policy rule then SYSCALL success=no", []string{policy, sysFail}, "failure"},
		{"SYSCALL success=no then policy rule", []string{sysFail, policy}, "failure"},
		// a measurement has neither res= nor success=
		{"measurement alone", []string{hash}, ""},
	}
	for _, c := range cases {
		if got := summarizeLines(t, c.lines...).Outcome; got != c.want {
			t.Errorf("%s: outcome %q, want %q", c.name, got, c.want)
		}
	}
}

// The Android logcat lines (Samsung SM-A300FU, arm): the kernel's records
// with their types as decimal numbers.
const (
	androidAVC     = `type=1400 msg=audit(1450655510.655:205): avc:  denied  { ioctl } for  pid=5654 comm=".test.thalitest" path="/sys/kernel/debug/tracing/trace_marker" dev="debugfs" ino=2064 scontext=u:r:untrusted_app:s0 tcontext=u:object_r:debugfs:s0 tclass=file permissive=0`
	androidSyscall = `type=1300 msg=audit(1450655510.655:205): arch=40000028 syscall=54 per=800000 success=no exit=-13 a0=7 a1=5451 a2=3 a3=be9fdd58 items=0 ppid=314 ppcomm=main pid=5654 auid=4294967295 uid=10326 gid=10326 euid=10326 suid=10326 fsuid=10326 egid=10326 sgid=10326 fsgid=10326 ses=4294967295 tty=(none) comm=".test.thalitest" exe="/system/bin/app_process32" subj=u:r:untrusted_app:s0 key=(null)`
	androidEOE     = `type=1320 msg=audit(1450655510.655:205): `
)

// TestNumericTypes: type=1300 and type=1320 became records of unknown
// type "1300" and "1320": EOE did not close the event (it timed out) and
// SYSCALL gave no summary. A decimal type is the numbered type, as
// UNKNOWN[1300] is, and Type keeps the text as sent.
func TestNumericTypes(t *testing.T) {
	for _, c := range []struct {
		name string
		num  uint16
	}{
		{"1300", 1300}, {"1320", 1320}, {"1400", 1400}, {"01300", 1300}, {"UNKNOWN[1300]", 1300},
		{"99999", 0}, {"0", 0}, {"13x0", 0}, {"1300]", 0}, {"", 0}, {"SYSCALL", 1300},
	} {
		if got := TypeNumber(c.name); got != c.num {
			t.Errorf("TypeNumber(%q) = %d, want %d", c.name, got, c.num)
		}
	}
	var p Parser
	var col collector
	r := NewReassembler(ReassemblerConfig{StreamTime: true}, col.emit)
	for _, l := range []string{androidAVC, androidSyscall, androidEOE} {
		rec, err := p.Parse(l)
		if err != nil {
			t.Fatal(err)
		}
		r.Push(rec)
	}
	if len(col.evs) != 1 {
		t.Fatalf("EOE (type=1320) did not close the event: %d events emitted before the flush", len(col.evs))
	}
	ev := col.evs[0]
	if ev.TimedOut || types(ev) != "1400,1300" || ev.Records[1].TypeNum != TypeSyscall {
		t.Errorf("event %s timed_out=%v, type numbers %d,%d", types(ev), ev.TimedOut, ev.Records[0].TypeNum, ev.Records[1].TypeNum)
	}
	var s Summary
	Summarize(ev, &s)
	if s.PID != "5654" || s.Exe != "/system/bin/app_process32" || s.Syscall != "54" || s.Outcome != "failure" {
		t.Errorf("summary pid %q exe %q syscall %q outcome %q; want 5654, /system/bin/app_process32, 54, failure", s.PID, s.Exe, s.Syscall, s.Outcome)
	}
}

// SELinux lines: RHEL 7 (nginx, named), a postfix AVC with two
// permissions, dbus and systemd USER_AVCs (CentOS 7, Fedora, RHEL 8
// ENRICHED), an AppArmor AVC (laurel).
const (
	avcNginx       = `type=AVC msg=audit(1677601548.669:1599): avc:  denied  { name_bind } for  pid=26808 comm="nginx" src=12345 scontext=system_u:system_r:httpd_t:s0 tcontext=system_u:object_r:unreserved_port_t:s0 tclass=tcp_socket permissive=0`
	avcPostfix     = `type=AVC msg=audit(1170021493.977:293): avc:  denied  { read write } for  pid=13010 comm="pickup" name="maildrop" dev=hda7 ino=14911367 scontext=system_u:system_r:postfix_pickup_t:s0 tcontext=system_u:object_r:postfix_spool_maildrop_t:s0 tclass=dir`
	avcNginxSC     = `type=SYSCALL msg=audit(1677601548.669:1599): arch=c000003e syscall=49 success=no exit=-13 a0=8 a1=55b9ec900ab0 a2=10 a3=7ffe401a8bb0 items=0 ppid=1 pid=26808 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="nginx" exe="/usr/sbin/nginx" subj=system_u:system_r:httpd_t:s0 key=(null)`
	userAVCDbus    = "type=USER_AVC msg=audit(1641131903.482:81): pid=901 uid=81 auid=4294967295 ses=4294967295 subj=system_u:system_r:system_dbusd_t:s0-s0:c0.c1023 msg='avc:  denied  { send_msg } for msgtype=method_return dest=:1.21 spid=944 tpid=2299 scontext=system_u:system_r:systemd_logind_t:s0 tcontext=system_u:system_r:cloud_init_t:s0 tclass=dbus permissive=0  exe=\"/usr/bin/dbus-daemon\" sauid=81 hostname=? addr=? terminal=?'\x1dUID=\"dbus\" AUID=\"unset\" SAUID=\"dbus\""
	userAVCSystemd = `type=USER_AVC msg=audit(1442602150.292:763): pid=1 uid=0 auid=4294967295 ses=4294967295 subj=system_u:system_r:init_t:s0 msg='avc:  denied  { start } for auid=n/a uid=0 gid=0 path="/run/systemd/system/session-4.scope" cmdline="/usr/lib/systemd/systemd-logind" scontext=system_u:system_r:systemd_logind_t:s0 tcontext=system_u:object_r:systemd_unit_file_t:s0 tclass=service  exe="/usr/lib/systemd/systemd" sauid=0 hostname=? addr=? terminal=?'`
	userAVCHexPerm = `type=USER_AVC msg=audit(1470087122.008:24063): pid=693 uid=81 auid=4294967295 ses=4294967295 subj=system_u:system_r:system_dbusd_t:s0-s0:c0.c1023 msg='avc:  denied  { 0x2 } for msgtype=signal interface=org.freedesktop.login1.Manager member=SessionNew dest=org.freedesktop.DBus spid=691 tpid=720 scontext=system_u:system_r:systemd_logind_t:s0 tcontext=system_u:system_r:modemmanager_t:s0 tclass=(null)  exe="/usr/bin/dbus-daemon" sauid=81 hostname=? addr=? terminal=?'`
	userAVCNotice  = `type=USER_AVC msg=audit(1515971856.024:10): pid=1 uid=0 auid=4294967295 ses=4294967295 subj=system_u:system_r:init_t:s0 msg='avc:  received setenforce notice (enforcing=0)  exe="/usr/lib/systemd/systemd" sauid=0 hostname=? addr=? terminal=?'`
	avcAppArmor    = `type=AVC msg=audit(1634728455.294:53732): apparmor="STATUS" operation="profile_replace" info="same as current profile, skipping" profile="unconfined" name="snap-update-ns.amazon-ssm-agent" pid=3981295 comm="apparmor_parser"`
)

// TestAVCDecision: the decision and the permissions of an SELinux AVC
// ("avc:  denied  { name_bind } for ...") were not fields: they survived
// only in the line (kernel AVC) or raw.msg (USER_AVC). They are now the
// fields seresult and seperms, auparse's names: first among the fields of
// a kernel AVC, which stays irregular (its line rebuilds it), and first
// among the nested fields of a USER_AVC, whose raw.msg rebuilds it.
func TestAVCDecision(t *testing.T) {
	cases := []struct {
		name, line        string
		result, perms     string // "" for no field
		nested, irregular bool
	}{
		{"kernel AVC", avcNginx, "denied", "name_bind", false, true},
		{"two permissions", avcPostfix, "denied", "read write", false, true},
		{"Android type=1400", androidAVC, "denied", "ioctl", false, true},
		{"granted", strings.Replace(avcNginx, "denied", "granted", 1), "granted", "name_bind", false, true},
		{"dbus USER_AVC, ENRICHED", userAVCDbus, "denied", "send_msg", true, false},
		{"systemd USER_AVC", userAVCSystemd, "denied", "start", true, false},
		{"USER_AVC, permission by number", userAVCHexPerm, "denied", "0x2", true, false},
		{"USER_AVC notice", userAVCNotice, "", "", true, false},
		{"AppArmor AVC", avcAppArmor, "", "", false, false},
		{"cut line, brace in a value", `type=AVC msg=audit(1677601548.669:1600): avc:  denied  { read for  pid=1 comm="a}b"`, "denied", "", false, true},
	}
	for _, c := range cases {
		var p Parser
		r, err := p.Parse(c.line)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if r.Irregular != c.irregular {
			t.Errorf("%s: irregular %v, want %v", c.name, r.Irregular, c.irregular)
		}
		res, hasRes := r.Get("seresult")
		perms, hasPerms := r.Get("seperms")
		if res != c.result || perms != c.perms || hasRes != (c.result != "") || hasPerms != (c.perms != "") {
			t.Errorf("%s: seresult %q (%v) seperms %q (%v); want %q, %q", c.name, res, hasRes, perms, hasPerms, c.result, c.perms)
			continue
		}
		if c.result == "" {
			continue
		}
		// where: first of their run, never among the outer fields of a
		// USER_AVC (which the rebuild writes from their enc letters)
		first := 0
		if c.nested {
			first = r.NestedFrom
		}
		if first < 0 || r.Fields[first].Name != "seresult" || c.perms != "" && r.Fields[first+1].Name != "seperms" {
			t.Errorf("%s: fields %v: seresult and seperms are not first of the run at %d", c.name, r.Fields, first)
		}
	}
}

// TestAVCOutcome: the outcome of an event comes from its SELinux decision
// only when nothing else gives one: the SYSCALL of the denied call wins;
// a denial is a failure only when the policy was enforced (permissive=0).
func TestAVCOutcome(t *testing.T) {
	cases := []struct {
		name  string
		lines []string
		want  string
	}{
		{"AVC and its SYSCALL", []string{avcNginx, avcNginxSC}, "failure"},
		{"AVC, SYSCALL success=yes (permissive)", []string{strings.Replace(avcNginx, "permissive=0", "permissive=1", 1), strings.Replace(avcNginxSC, "success=no exit=-13", "success=yes exit=0", 1)}, "success"},
		{"enforced AVC alone", []string{avcNginx}, "failure"},
		{"permissive AVC alone", []string{strings.Replace(avcNginx, "permissive=0", "permissive=1", 1)}, ""},
		{"AVC without permissive=", []string{avcPostfix}, ""},
		{"granted", []string{strings.Replace(avcNginx, "denied", "granted", 1)}, "success"},
		{"enforced dbus USER_AVC", []string{userAVCDbus}, "failure"},
		{"USER_AVC without permissive=", []string{userAVCSystemd}, ""},
		{"USER_AVC notice", []string{userAVCNotice}, ""},
	}
	for _, c := range cases {
		if got := summarizeLines(t, c.lines...).Outcome; got != c.want {
			t.Errorf("%s: outcome %q, want %q", c.name, got, c.want)
		}
	}
}
