package plugin_test

import (
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
