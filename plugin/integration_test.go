package plugin_test

import (
	"bufio"
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
// whole, with argv that forced hex encoding decoded.
func TestIntegrationRealAuditd(t *testing.T) {
	testsupport.SkipShort(t, "runs the plugin under a real auditd (root, kernel audit), three builds")
	if err := auditdtest.Available(); err != nil {
		t.Skipf("kernel audit unreachable: %v", err)
	}
	for _, c := range []struct{ format, user string }{{"string", "root"}, {"binary", "root"}, {"string", "nobody"}} {
		t.Run(c.format+"-"+c.user, func(t *testing.T) { runAuditdCase(t, c.format, c.user) })
	}
}

func runAuditdCase(t *testing.T, format, runAs string) {
	dir := t.TempDir()
	// The service user must be able to reach the state dir it gets.
	for d := dir; d != "/tmp" && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := testsupport.PluginBinary(t)
	state := filepath.Join(dir, "state")
	out := filepath.Join(state, "events.json")
	cfg := filepath.Join(dir, "config.toml")
	writeFile(t, cfg, fmt.Sprintf(`user = %q
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
`, runAs, state, format, filepath.Join(dir, "parse-errors.log"), out))
	plug := fmt.Sprintf("active = yes\ndirection = out\npath = %s\ntype = always\nargs = --config %s\nformat = %s\n", bin, cfg, format)
	a := auditdtest.Start(t, auditdtest.Options{Plugins: map[string]string{"audisp-enrich.conf": plug}})

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
	var found *doc
	testsupport.Until(10*time.Second, func() bool {
		found = findEvent(t, out, prog)
		return found != nil
	})
	// Stopping auditd closes the plugin's stdin: it must flush and exit.
	a.Stop()
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
	types := map[string]bool{}
	for _, r := range found.Records {
		types[r.Type] = true
	}
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
	testsupport.Until(5*time.Second, func() bool {
		out, _ := exec.Command("pgrep", "-f", "^"+bin).Output()
		pids := strings.Fields(string(out))
		if len(pids) != 1 {
			return false
		}
		b, err := os.ReadFile("/proc/" + pids[0] + "/status")
		status = string(b)
		return err == nil && (runAs == "root" || !strings.Contains(status, "Uid:\t0\t"))
	})
	if status == "" {
		t.Fatalf("plugin process %s not found", bin)
	}
	field := func(name string) string {
		for _, l := range strings.Split(status, "\n") {
			if v, ok := strings.CutPrefix(l, name+":"); ok {
				return strings.TrimSpace(v)
			}
		}
		return ""
	}
	if field("NoNewPrivs") != "1" {
		t.Errorf("NoNewPrivs = %q, want 1", field("NoNewPrivs"))
	}
	var ign uint64
	fmt.Sscanf(field("SigIgn"), "%x", &ign)
	// Bit n-1 of SigIgn is signal n: SIGHUP is 1, SIGTERM 15.
	const sighupBit, sigtermBit = 1 << 0, 1 << 14
	if ign&sighupBit != 0 || ign&sigtermBit != 0 {
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
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var d doc
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			t.Fatalf("invalid JSON line: %v\n%s", err, sc.Text())
		}
		if d.Process.Executable == exe {
			return &d
		}
	}
	return nil
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o640); err != nil {
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
