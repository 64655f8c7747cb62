package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/conf"
)

// countedReplay is what replayCounted saw: the main log (where rejected
// and flagged input goes), the documents, and the counts replay gave.
type countedReplay struct {
	log    string
	out    string
	counts ReplayCounts
	got    bool // Counts was called
}

// replayCounted replays content as one file with [log] parse_error_rate
// = 1 and the error log in the main log.
func replayCounted(t *testing.T, content string) *countedReplay {
	t.Helper()
	dir := t.TempDir()
	in := filepath.Join(dir, "audit.log")
	must(t, os.WriteFile(in, []byte(content), 0o644))
	cfg, err := conf.Parse("counted.toml", []byte(fmt.Sprintf(`
state_dir = %q
[log]
syslog = false
parse_error_rate = 1
[enrich.proc]
enabled = false
[[sink]]
type = "file"
[sink.file]
path = %q
`, dir, filepath.Join(dir, "out.jsonl"))))
	if err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	res := &countedReplay{}
	opt := ReplayOptions{Counts: func(c ReplayCounts) { res.counts, res.got = c, true }}
	if err := Replay(context.Background(), cfg, slog.New(slog.NewTextHandler(&logged, nil)), []string{in}, opt); err != nil {
		t.Fatal(err)
	}
	out, _ := os.ReadFile(filepath.Join(dir, "out.jsonl"))
	res.log, res.out = logged.String(), string(out)
	if !res.got {
		t.Fatal("replay gave no counts")
	}
	c := res.counts
	if c.Lines != int64(c.Records)+int64(Total(c.Rejected)) {
		t.Errorf("lines %d != records %d + rejected %v", c.Lines, c.Records, c.Rejected)
	}
	return res
}

// entries returns the error log's entries of the main log with message
// msg, each as "line=N reason=R suppressed_before=N" (line= only when
// the entry has one).
func (r *countedReplay) entries(msg string) []string {
	re := regexp.MustCompile(`msg="` + msg + `" (?:file=\S+ )?(line=\d+ )?reason=(\S+) .*suppressed_before=(\d+)`)
	var got []string
	for _, l := range strings.Split(r.log, "\n") {
		if m := re.FindStringSubmatch(l); m != nil {
			got = append(got, m[1]+"reason="+m[2]+" suppressed_before="+m[3])
		}
	}
	return got
}

// TestReplayReportsSuppressedAtEnd: rejections over parse_error_rate at
// the end of a replay are reported when it ends, in one entry saying how
// many and which lines (ausearch's separator lines: after the last,
// nothing follows to carry their count), and the counts name them.
func TestReplayReportsSuppressedAtEnd(t *testing.T) {
	sep := "----\ntime->Fri Apr 28 16:50:31 2023\n"
	res := replayCounted(t, sep+event(1)+sep)
	// At a rate of 1 a second, the first is logged; the other three are
	// suppressed, unless a second passed between them.
	rej := res.entries("rejected input")
	sup := res.entries("rejected input suppressed")
	if len(rej) == 0 || rej[0] != "line=1 reason=no_type suppressed_before=0" {
		t.Fatalf("rejections logged: %q\n%s", rej, res.log)
	}
	total := len(rej)
	for _, s := range sup {
		n, _ := strconv.Atoi(s[strings.LastIndex(s, "=")+1:])
		total += n
	}
	if total != 4 {
		t.Errorf("%d rejections logged or counted as suppressed, want 4: %q then %q\n%s", total, rej, sup, res.log)
	}
	if len(rej) < 4 {
		if len(sup) != 1 || !strings.Contains(res.log, "lines 2 to 6") {
			t.Errorf("suppressed at the end: %q, want one entry naming lines 2 to 6 (or from an earlier one)\n%s", sup, res.log)
		}
	}
	if got := res.counts.Rejected["no_type"]; got != 4 || res.counts.Records != 2 || res.counts.Lines != 6 {
		t.Errorf("counts %+v, want 6 lines, 2 records, 4 no_type", res.counts)
	}
}

// TestReplayFlagsNeverHideRejection: lines that are only flagged
// (invalid UTF-8: processed) are logged as flagged input and do not use
// the rejections' share of parse_error_rate, so the real rejection after
// a run of them is logged.
func TestReplayFlagsNeverHideRejection(t *testing.T) {
	var in strings.Builder
	for i := 1; i <= 11; i++ {
		fmt.Fprintf(&in, "type=USER_START msg=audit(1610992796.780:%d): pid=1 uid=0 auid=1000 ses=3 msg='op=PAM:session_open acct=\"j\xf6rg\" exe=\"/usr/sbin/sshd\" res=success'\n", i)
	}
	in.WriteString("----\n")
	res := replayCounted(t, in.String())
	if rej := res.entries("rejected input"); len(rej) != 1 || rej[0] != "line=12 reason=no_type suppressed_before=0" {
		t.Errorf("rejections logged: %q, want line 12 no_type\n%s", rej, res.log)
	}
	flags := res.entries("flagged input")
	if len(flags) == 0 || flags[0] != "line=1 reason=invalid_utf8 suppressed_before=0" {
		t.Errorf("flags logged: %q, want line 1 first\n%s", flags, res.log)
	}
	if n := strings.Count(res.out, "\n"); n != 11 {
		t.Errorf("%d documents, want 11", n)
	}
	c := res.counts
	if c.Flagged["invalid_utf8"] != 11 || c.Rejected["no_type"] != 1 || c.Records != 11 {
		t.Errorf("counts %+v, want 11 records flagged invalid_utf8, 1 no_type", c)
	}
}

// TestReplayPowerLossNUL: the record after the NUL bytes a power loss
// left in audit.log, on the same line, is parsed; the line is flagged
// once, saying how many bytes were skipped. A line of NULs only is
// rejected once (not again by the parser).
func TestReplayPowerLossNUL(t *testing.T) {
	start := "node=web type=DAEMON_START msg=audit(1682690151.869:4366): op=start ver=2.8.5 format=raw kernel=3.10.0 auid=4294967295 pid=1 uid=0 ses=4294967295 subj=system_u:system_r:auditd_t:s0 res=success\n"
	in := event(1) + "type=SYSCALL msg=audit(1700000000.002:2): arch=c000003e sysc" + strings.Repeat("\x00", 3000) + start +
		strings.Repeat("\x00", 100) + "\n" + event(3)
	res := replayCounted(t, in)
	var types []string
	for _, l := range strings.Split(strings.TrimSpace(res.out), "\n") {
		var d struct {
			Records []struct{ Type string } `json:"records"`
		}
		must(t, json.Unmarshal([]byte(l), &d))
		types = append(types, d.Records[0].Type)
	}
	slices.Sort(types) // a lone daemon record is held a little: not in input order
	if strings.Join(types, " ") != "DAEMON_START SYSCALL SYSCALL" {
		t.Errorf("documents of %q, want two SYSCALL and the DAEMON_START after the NULs", types)
	}
	flags := res.entries("flagged input")
	if len(flags) != 1 || flags[0] != "line=3 reason=nul_byte suppressed_before=0" ||
		!strings.Contains(res.log, "skipped 3060 bytes (3000 of them NUL) before the record") {
		t.Errorf("flags %q, want line 3 nul_byte saying 3060 bytes (3000 NUL) were skipped\n%s", flags, res.log)
	}
	if rej := res.entries("rejected input"); len(rej) != 1 || rej[0] != "line=4 reason=nul_byte suppressed_before=0" {
		t.Errorf("rejections %q, want line 4 nul_byte only\n%s", rej, res.log)
	}
	c := res.counts
	if c.Lines != 6 || c.Records != 5 || c.Rejected["nul_byte"] != 1 || c.Flagged["nul_byte"] != 1 || len(c.Rejected) != 1 {
		t.Errorf("counts %+v, want 6 lines, 5 records, 1 nul_byte rejected and 1 flagged", c)
	}
}

// TestReplayCountsEmptyLines: blank lines are counted (rejected as
// empty: no record) but not logged.
func TestReplayCountsEmptyLines(t *testing.T) {
	res := replayCounted(t, "\n"+event(1)+"\n\n"+event(2))
	if got := res.counts.Rejected["empty"]; got != 3 || res.counts.Lines != 7 {
		t.Errorf("counts %+v, want 7 lines, 3 empty", res.counts)
	}
	if strings.Contains(res.log, "reason=empty") {
		t.Errorf("an empty line was logged:\n%s", res.log)
	}
}
