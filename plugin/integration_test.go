package plugin_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/auditdtest"
	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
)

// TestMain removes the plugin binary testsupport.PluginBinary built.
func TestMain(m *testing.M) { testsupport.Main(m) }

type doc struct {
	Event struct {
		ID string `json:"id"`
	} `json:"event"`
	Records []struct {
		Type   string         `json:"type"`
		Fields map[string]any `json:"fields"`
	} `json:"records"`
	Process struct {
		Executable string   `json:"executable"`
		Args       []string `json:"args"`
		Cwd        string   `json:"working_directory"`
	} `json:"process"`
	User struct {
		ID    string `json:"id"`
		Name  string `json:"name"`
		Audit struct {
			Name string `json:"name"`
		} `json:"audit"`
	} `json:"user"`
	Tags   []string `json:"tags"`
	Threat struct {
		Technique struct {
			ID           []string `json:"id"`
			Subtechnique struct {
				ID []string `json:"id"`
			} `json:"subtechnique"`
		} `json:"technique"`
	} `json:"threat"`
}

// TestIntegrationRealAuditd runs the plugin under a real auditd in both
// plugins.d formats and checks that a real kernel exec event comes out
// whole, with argv that forced hex encoding decoded: the host's auditd
// (Debian 12: 3.0.9), then Debian trixie's 4.0.2 and sid's 4.2.1, each
// run from a debootstrap root against the host kernel (auditdtest.Chroot;
// skipped with -short, or with the reason when a root cannot be made).
func TestIntegrationRealAuditd(t *testing.T) {
	testsupport.SkipShort(t, "runs the plugin under a real auditd (root, kernel audit), three builds")
	if err := auditdtest.Available(); err != nil {
		t.Skipf("kernel audit unreachable: %v", err)
	}
	for _, c := range []struct{ format, user string }{{"string", "root"}, {"binary", "root"}, {"string", "nobody"}} {
		t.Run(c.format+"-"+c.user, func(t *testing.T) { runAuditdCase(t, c.format, c.user, "") })
	}
	for _, s := range auditdtest.Suites4 {
		for _, format := range []string{"string", "binary"} {
			t.Run("auditd-"+s.Auditd+"-"+format, func(t *testing.T) {
				runAuditdCase(t, format, "root", auditdtest.Chroot(t, s))
			})
		}
	}
}

// runAuditdCase runs one case; root, when not empty, is the root file
// system auditd and the plugin run in (paths in their configs are inside it).
func runAuditdCase(t *testing.T, format, runAs, root string) {
	dir, inner := auditdtest.TempDir(t, root)
	// The service user must be able to reach the state dir it gets.
	for d := dir; d != "/tmp" && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(t, testsupport.PluginBinary(t), filepath.Join(dir, "audisp-enrich"), 0o750)
	bin := filepath.Join(inner, "audisp-enrich")
	state := filepath.Join(inner, "state")
	out := filepath.Join(dir, "state", "events.json")
	cfg := filepath.Join(inner, "config.toml")
	writeFile(t, filepath.Join(dir, "config.toml"), fmt.Sprintf(`user = %q
state_dir = %q
[input]
format = %q
[log]
level = "debug"
syslog = false
parse_errors = %q
[status]
interval = "0s"
[[sink]]
type = "file"
[sink.file]
path = %q
`, runAs, state, format, filepath.Join(inner, "parse-errors.log"), filepath.Join(state, "events.json")))
	plug := fmt.Sprintf("active = yes\ndirection = out\npath = %s\ntype = always\nargs = --config %s\nformat = %s\n", bin, cfg, format)
	a := auditdtest.Start(t, auditdtest.Options{Root: root, Plugins: map[string]string{"audisp-enrich.conf": plug}})
	if root != "" {
		log, _ := os.ReadFile(a.LogFile)
		if i := bytes.Index(log, []byte(" ver=")); i >= 0 {
			t.Logf("auditd from %s: DAEMON_START ...%.20s", root, log[i:])
		}
	}

	work := t.TempDir()
	prog := filepath.Join(work, "prog")
	copyFile(t, "/bin/echo", prog, 0o755)
	key := "T1059.004_test"
	a.AddRule("-a", "always,exit", "-F", "arch=b64", "-S", "execve", "-F", "dir="+work, "-k", key)
	time.Sleep(300 * time.Millisecond) // let auditd start the plugin
	checkPluginProcess(t, bin, runAs)
	args := []string{"plain", "with space", `q"uote`, "tab\there", "ünï"}
	cmd := exec.Command(prog, args...)
	cmd.Dir = work
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	// A user message (auditctl -m) from a process whose sendto is audited.
	// Kernels that attach the sender's syscall records to a user message
	// (seen with stacked LSMs: MAC_TASK_CONTEXTS) give them its stamp and
	// serial, then EOE; others give the SYSCALL event its own serial.
	// Either way the message's event id has exactly one document, with
	// every record of that id, and a lone USER record is not held back.
	sender := filepath.Join(work, "auditctl")
	copyFile(t, "/sbin/auditctl", sender, 0o755)
	a.AddRule("-a", "always,exit", "-F", "arch=b64", "-S", "sendto", "-S", "sendmsg", "-F", "exe="+sender, "-k", "ae_user_msg")
	if o, err := exec.Command(sender, "-m", "audisp-enrich test message").CombinedOutput(); err != nil {
		t.Fatalf("auditctl -m: %v: %s", err, o)
	}
	var found *doc
	var userMsg []*doc
	testsupport.Until(10*time.Second, func() bool {
		found = findEvent(t, out, prog)
		userMsg = userMessageDocs(t, out, sender)
		return found != nil && len(userMsg) > 0
	})
	// Stopping auditd closes the plugin's stdin: it must flush and exit.
	a.Stop()
	if userMsg = userMessageDocs(t, out, sender); len(userMsg) != 1 {
		t.Errorf("%d documents for the user message's event id, want 1: %+v", len(userMsg), userMsg)
	} else {
		logged := loggedRecords(t, a.LogFile, strings.TrimPrefix(userMsg[0].Event.ID, ":"))
		if got := len(userMsg[0].Records); got != logged {
			t.Errorf("user message event %s: %d records in its document, auditd logged %d", userMsg[0].Event.ID, got, logged)
		}
		t.Logf("user message event %s: one document with %v", userMsg[0].Event.ID, recordTypes(userMsg[0]))
	}
	if found == nil {
		found = findEvent(t, out, prog)
	}
	if found == nil {
		b, _ := os.ReadFile(out)
		pe, _ := os.ReadFile(filepath.Join(dir, "parse-errors.log"))
		t.Fatalf("no event for %s in plugin output (%d bytes):\n%s\nparse errors:\n%s", prog, len(b), tail(b), pe)
	}
	want := append([]string{prog}, args...)
	if strings.Join(found.Process.Args, "\x00") != strings.Join(want, "\x00") {
		t.Errorf("args = %q, want %q", found.Process.Args, want)
	}
	if found.Process.Executable != prog {
		t.Errorf("executable = %q, want %q", found.Process.Executable, prog)
	}
	if found.Process.Cwd != work {
		t.Errorf("cwd = %q, want %q", found.Process.Cwd, work)
	}
	if !contains(found.Tags, key) {
		t.Errorf("tags %q lack key %q", found.Tags, key)
	}
	if found.User.ID != "0" || found.User.Name != "root" {
		t.Errorf("user = %+v, want id 0 name root (ENRICHED)", found.User)
	}
	if !contains(found.Threat.Technique.Subtechnique.ID, "T1059.004") || !contains(found.Threat.Technique.ID, "T1059") {
		t.Errorf("threat = %+v, want T1059 / T1059.004", found.Threat)
	}
	types := recordTypes(found)
	for _, tname := range []string{"SYSCALL", "EXECVE", "CWD", "PATH", "PROCTITLE"} {
		if !types[tname] {
			t.Errorf("event %s lacks a %s record (has %v)", found.Event.ID, tname, types)
		}
	}
	if pe, _ := os.ReadFile(filepath.Join(dir, "parse-errors.log")); len(pe) > 0 {
		t.Errorf("plugin logged parse errors:\n%s", pe)
	}
	validateFile(t, out)
}

// checkPluginProcess reads /proc/PID/status of the plugin auditd started:
// the user it runs as, no capabilities when unprivileged, no_new_privs,
// and SIGTERM/SIGHUP not ignored (auditd starts plugins with them ignored).
func checkPluginProcess(t *testing.T, bin, runAs string) {
	t.Helper()
	var status string
	field := func(name string) string {
		for _, l := range strings.Split(status, "\n") {
			if v, ok := strings.CutPrefix(l, name+":"); ok {
				return strings.TrimSpace(v)
			}
		}
		return ""
	}
	// Bit n-1 of SigIgn is signal n: SIGHUP is 1, SIGTERM 15.
	const sighupBit, sigtermBit = 1 << 0, 1 << 14
	ignored := func() uint64 {
		var ign uint64
		fmt.Sscanf(field("SigIgn"), "%x", &ign)
		return ign & (sighupBit | sigtermBit)
	}
	// Until the plugin has set itself up (it takes the signals, sets
	// no_new_privs and drops privileges only after its pipeline and
	// files are ready: about 0.1 s on an idle machine, seconds on a
	// loaded one); the checks below then say what is still wrong.
	testsupport.Until(15*time.Second, func() bool {
		out, _ := exec.Command("pgrep", "-f", "^"+bin).Output()
		pids := strings.Fields(string(out))
		if len(pids) != 1 {
			return false
		}
		b, err := os.ReadFile("/proc/" + pids[0] + "/status")
		status = string(b)
		return err == nil && field("NoNewPrivs") == "1" && ignored() == 0 &&
			(runAs == "root" || !strings.Contains(status, "Uid:\t0\t"))
	})
	if status == "" {
		t.Fatalf("plugin process %s not found", bin)
	}
	if field("NoNewPrivs") != "1" {
		t.Errorf("NoNewPrivs = %q, want 1", field("NoNewPrivs"))
	}
	if ignored() != 0 {
		t.Errorf("SigIgn = %s: SIGHUP or SIGTERM still ignored", field("SigIgn"))
	}
	if runAs == "root" {
		return
	}
	want := "65534"
	if uid := strings.Fields(field("Uid")); len(uid) != 4 || uid[0] != want || uid[1] != want || uid[2] != want || uid[3] != want {
		t.Errorf("Uid = %q, want all %s (%s)", field("Uid"), want, runAs)
	}
	for _, c := range []string{"CapEff", "CapPrm", "CapInh", "CapAmb"} {
		if v := field(c); strings.Trim(v, "0") != "" {
			t.Errorf("%s = %s, want 0", c, v)
		}
	}
	t.Logf("plugin runs as %s: Uid %s, CapEff %s, NoNewPrivs %s", runAs, field("Uid"), field("CapEff"), field("NoNewPrivs"))
}

func findEvent(t *testing.T, path, exe string) *doc {
	for _, d := range decodeLines[*doc](t, path) {
		if d.Process.Executable == exe {
			return d
		}
	}
	return nil
}

// userMessageDocs returns the documents whose event id is that of the
// USER record sent by exe.
func userMessageDocs(t *testing.T, path, exe string) []*doc {
	docs := decodeLines[*doc](t, path)
	id := ""
	for _, d := range docs {
		for _, r := range d.Records {
			if msg, _ := r.Fields["msg"].(map[string]any); r.Type == "USER" && msg["exe"] == exe {
				id = d.Event.ID
			}
		}
	}
	var same []*doc
	for _, d := range docs {
		if id != "" && d.Event.ID == id {
			same = append(same, d)
		}
	}
	return same
}

// loggedRecords counts the records of event SEC.MSEC:SERIAL in an audit.log.
func loggedRecords(t *testing.T, log, id string) int {
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "msg=audit("+id+")")
}

func recordTypes(d *doc) map[string]bool {
	types := map[string]bool{}
	for _, r := range d.Records {
		types[r.Type] = true
	}
	return types
}

// decodeLines decodes each whole line of the JSON Lines file at path into
// a T (nothing when the file is absent). A last line without its newline
// is left out: the plugin may be writing it while the test polls.
func decodeLines[T any](t *testing.T, path string) []T {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	b = b[:bytes.LastIndexByte(b, '\n')+1]
	var docs []T
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		var d T
		if err := json.Unmarshal(b[:i], &d); err != nil {
			t.Fatalf("invalid JSON line: %v\n%s", err, b[:i])
		}
		docs = append(docs, d)
		b = b[i+1:]
	}
	return docs
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o640); err != nil {
		t.Fatal(err)
	}
}

// replaceFile replaces path with content by rename, as configuration
// management does, so that a reader (the plugin on SIGHUP) sees the old
// file or the new one, never one half written.
func replaceFile(t *testing.T, path, content string) {
	t.Helper()
	writeFile(t, path+".new", content)
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, mode); err != nil {
		t.Fatal(err)
	}
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

func tail(b []byte) []byte {
	if len(b) > 4000 {
		return b[len(b)-4000:]
	}
	return b
}
