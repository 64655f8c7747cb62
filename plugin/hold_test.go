package plugin_test

import (
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

// TestLiveHoldAndLate runs plugin mode on a pipe: a user message whose
// kernel records come in a second write is one document; a lone user
// record is emitted while the plugin runs (not only at EOF); a record of
// it written after that is a second document of its id flagged late.
func TestLiveHoldAndLate(t *testing.T) {
	p := startPlugin(t, "[input]\ncoalesce = \"0s\"\n")
	write := func(lines ...string) {
		t.Helper()
		if _, err := io.WriteString(p.stdin, strings.Join(lines, "\n")+"\n"); err != nil {
			t.Fatal(err)
		}
	}
	write(`type=SERVICE_START msg=audit(1764950400.112:8812): pid=1 uid=0 auid=4294967295 ses=4294967295 subj=unconfined msg='unit=logrotate comm="systemd" exe="/usr/lib/systemd/systemd" hostname=? addr=? terminal=? res=success'`)
	write(`type=SYSCALL msg=audit(1764950400.112:8812): arch=c000003e syscall=46 success=yes exit=128 a0=2e a1=7ffc1d3a5f50 a2=4000 a3=0 items=0 ppid=0 pid=1 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="systemd" exe="/usr/lib/systemd/systemd" subj=unconfined key=(null)`,
		`type=SOCKADDR msg=audit(1764950400.112:8812): saddr=100000000000000000000000`,
		`type=MAC_TASK_CONTEXTS msg=audit(1764950400.112:8812): subj_selinux=system_u:system_r:init_t:s0 subj_apparmor=unconfined`,
		`type=PROCTITLE msg=audit(1764950400.112:8812): proctitle=2F7362696E2F696E6974`,
		`type=EOE msg=audit(1764950400.112:8812): `)
	base := waitDoc(t, p.out, ":1764950400.112:8812", time.Now())
	start := time.Now()
	write(`type=USER_LOGIN msg=audit(1764950401.420:8822): pid=2211 uid=0 auid=1000 ses=7 subj=unconfined msg='op=login id=1000 exe="/usr/sbin/sshd" hostname=198.51.100.7 addr=198.51.100.7 terminal=/dev/pts/1 res=success'`)
	took := waitDoc(t, p.out, ":1764950401.420:8822", start)
	t.Logf("in the file sink after being written to stdin: the lone USER_LOGIN after %s; the SERVICE_START event, which ends with EOE, after %s",
		took.Round(time.Millisecond), base.Round(time.Millisecond))
	write(`type=SYSCALL msg=audit(1764950401.420:8822): arch=c000003e syscall=44 success=yes exit=196 a0=5 a1=7ffd6b0e4a10 a2=c4 a3=0 items=0 ppid=2209 pid=2211 auid=1000 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=7 comm="sshd" exe="/usr/sbin/sshd" subj=unconfined key=(null)`,
		`type=EOE msg=audit(1764950401.420:8822): `)
	p.stdin.Close()
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("exit: %v", err)
	}
	validateFile(t, p.out)
	docs := decodeLines[map[string]any](t, p.out)
	byID := map[string][]map[string]any{}
	for _, d := range docs {
		id, _ := dig(d, "event", "id").(string)
		byID[id] = append(byID[id], d)
	}
	types := func(d map[string]any) string {
		var ts []string
		for _, r := range d["records"].([]any) {
			ts = append(ts, r.(map[string]any)["type"].(string))
		}
		return strings.Join(ts, ",")
	}
	if ds := byID[":1764950400.112:8812"]; len(ds) != 1 || types(ds[0]) != "SERVICE_START,SYSCALL,SOCKADDR,MAC_TASK_CONTEXTS,PROCTITLE" {
		t.Errorf("SERVICE_START event: %d documents, want one with all five records: %v", len(ds), ds)
	}
	ds := byID[":1764950401.420:8822"]
	if len(ds) != 2 || types(ds[0]) != "USER_LOGIN" || dig(ds[0], "event", "late") != nil ||
		types(ds[1]) != "SYSCALL" || dig(ds[1], "event", "late") != true {
		t.Errorf("USER_LOGIN event: want USER_LOGIN, then SYSCALL flagged late; got %v", ds)
	}
}

// waitDoc waits until the file at path holds a document of event id and
// returns how long after start that was.
func waitDoc(t *testing.T, path, id string, start time.Time) time.Duration {
	t.Helper()
	for time.Since(start) < 10*time.Second {
		if strings.Contains(readAll(path), `"id":"`+id+`"`) {
			return time.Since(start)
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("event %s not emitted within 10 s of being written:\n%s", id, readAll(path))
	return 0
}

func readAll(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// TestLiveIdleThenEvent runs plugin mode on a pipe the way auditd writes
// to it, one record per write: after a quiet spell longer than
// eoe_timeout, the next event, whose records come a few milliseconds
// apart, is still one document with all its records and no flag. (The
// reassembler's clock was once set only by maintenance, which stops while
// the plugin is idle: the first record after the spell was stamped with
// the time before it and timed out at once, and the rest came late.)
func TestLiveIdleThenEvent(t *testing.T) {
	p := startPlugin(t, "[input]\ncoalesce = \"0s\"\n[reassembly]\neoe_timeout = \"300ms\"\n")
	event := func(serial int) []string {
		st := fmt.Sprintf("1764950400.%03d:%d", serial%1000, serial)
		return []string{
			`type=SYSCALL msg=audit(` + st + `): arch=c000003e syscall=59 success=yes exit=0 a0=55d0 a1=55d1 a2=55d2 a3=0 items=1 ppid=1 pid=4242 auid=1000 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts0 ses=3 comm="ls" exe="/usr/bin/ls" subj=unconfined key="exec"`,
			`type=EXECVE msg=audit(` + st + `): argc=2 a0="ls" a1="-l"`,
			`type=CWD msg=audit(` + st + `): cwd="/root"`,
			`type=PATH msg=audit(` + st + `): item=0 name="/usr/bin/ls" inode=1 dev=fe:00 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0`,
			`type=PROCTITLE msg=audit(` + st + `): proctitle=6C73002D6C`,
			`type=EOE msg=audit(` + st + `): `,
		}
	}
	write := func(serial int) {
		t.Helper()
		for _, l := range event(serial) {
			if _, err := io.WriteString(p.stdin, l+"\n"); err != nil {
				t.Fatal(err)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	write(100)
	waitDoc(t, p.out, ":1764950400.100:100", time.Now())
	// Idle for twice eoe_timeout: the loop's timer stops FlushInterval
	// after the last document, and nothing maintains the reassembler.
	time.Sleep(600 * time.Millisecond)
	write(101)
	time.Sleep(600 * time.Millisecond)
	write(102)
	p.stdin.Close()
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("exit: %v", err)
	}
	docs := decodeLines[map[string]any](t, p.out)
	if len(docs) != 3 {
		t.Errorf("%d documents, want 3 (one per event)", len(docs))
	}
	for _, d := range docs {
		recs, _ := d["records"].([]any)
		if len(recs) != 5 || dig(d, "event", "timed_out") != nil || dig(d, "event", "late") != nil {
			t.Errorf("event %v: %d records, timed_out %v, late %v; want all 5 records and no flag",
				dig(d, "event", "id"), len(recs), dig(d, "event", "timed_out"), dig(d, "event", "late"))
		}
	}
}
