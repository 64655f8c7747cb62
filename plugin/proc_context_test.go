package plugin_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit/audittest"
	"github.com/audisp-enrich/audisp-enrich/plugin/auditdtest"
	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
)

// TestProcessContextRealAuditd runs the plugin under a real auditd (a
// scoped execve rule with its own key) with a full and an ecs file sink.
// A shell (a copy of /bin/sh) started by this test execs a child (a copy
// of /bin/sleep): the child's document carries the shell's executable and
// command line as its parent, the ancestry (shell, this test binary, read
// from /proc), and the container and unit of the cgroups the test puts the
// shell in: one named like Docker's scope (systemd driver), one named like
// a systemd service. This machine may run no systemd and no container
// runtime: the cgroups are real kernel cgroups made by the test under the
// cgroup v2 (else v1 name=systemd) hierarchy, and removed after.
func TestProcessContextRealAuditd(t *testing.T) {
	testsupport.SkipShort(t, "starts a real auditd and makes cgroups (root)")
	hier := cgroupHierarchy(t)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "audisp-enrich")
	copyFile(t, testsupport.PluginBinary(t), bin, 0o750)
	full, ecs := filepath.Join(dir, "full.json"), filepath.Join(dir, "ecs.json")
	cfg := filepath.Join(dir, "config.toml")
	writeFile(t, cfg, fmt.Sprintf(`user = "root"
state_dir = %q
[log]
syslog = false
[status]
interval = "0s"
[enrich.proc]
ancestry = 4
[[sink]]
type = "file"
name = "full"
[sink.file]
path = %q
[[sink]]
type = "file"
name = "ecs"
profile = "ecs"
[sink.file]
path = %q
`, filepath.Join(dir, "state"), full, ecs))
	plug := fmt.Sprintf("active = yes\ndirection = out\npath = %s\ntype = always\nargs = --config %s\nformat = string\n", bin, cfg)
	a := auditdtest.Start(t, auditdtest.Options{Plugins: map[string]string{"audisp-enrich.conf": plug}})

	work := t.TempDir()
	psh, child := filepath.Join(work, "psh"), filepath.Join(work, "child")
	copyFile(t, "/bin/sh", psh, 0o755)
	copyFile(t, "/bin/sleep", child, 0o755)
	a.AddRule("-a", "always,exit", "-F", "arch=b64", "-S", "execve", "-F", "dir="+work, "-k", "ae_proc_ctx")
	time.Sleep(300 * time.Millisecond) // let auditd start the plugin

	id := fmt.Sprintf("%x", sha256.Sum256([]byte(time.Now().String())))
	unit := fmt.Sprintf("ae-proc-test-%d.service", os.Getpid())
	top := makeCgroup(t, hier, fmt.Sprintf("audisp-enrich-test-%d", os.Getpid()))
	cases := []struct {
		cgroup, arg string
		check       func(t *testing.T, d map[string]any, e map[string]any)
	}{
		{makeCgroup(t, hier, filepath.Join(filepath.Base(top), "system.slice", "docker-"+id+".scope")), "60.5",
			func(t *testing.T, d, e map[string]any) {
				wantAt(t, d, "container.id", id)
				wantAt(t, d, "container.runtime", "docker")
				wantAt(t, e, "container.id", id)
				wantAt(t, e, "container.runtime", "docker")
				wantAt(t, d, "systemd", nil)
			}},
		{makeCgroup(t, hier, filepath.Join(filepath.Base(top), "system.slice", unit)), "60.6",
			func(t *testing.T, d, e map[string]any) {
				wantAt(t, d, "systemd.unit", unit)
				wantAt(t, e, "service.name", unit)
				wantAt(t, d, "container", nil)
			}},
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		script := child + " " + c.arg + "; exit 0"
		// An unaudited /bin/sh moves itself into the cgroup, then execs
		// the audited shell, which forks the child. The child sleeps
		// until its documents are out (the plugin reads its cgroup while
		// it runs, which a loaded machine may delay by seconds); then
		// its process group is killed.
		cmd := exec.Command("/bin/sh", "-c", `echo $$ > "$1/cgroup.procs" && exec "$2" -c "$3"`, "sh", c.cgroup, psh, script)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var d, e map[string]any
		testsupport.Until(20*time.Second, func() bool {
			d = docFor(t, full, child, c.arg)
			e = docFor(t, ecs, child, c.arg)
			return d != nil && e != nil
		})
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		if d == nil || e == nil {
			b, _ := os.ReadFile(full)
			t.Fatalf("no document for %s %s in the output (the shell said %q):\n%s", child, c.arg, out.String(), tail(b))
		}
		t.Logf("%s: parent %v, ancestry %v, container %v, systemd %v, cgroup %v", c.cgroup, at(d, "process.parent"), d["ancestry"], d["container"], d["systemd"], d["cgroup"])
		wantAt(t, d, "process.parent.executable", psh)
		wantAt(t, d, "process.parent.args", []any{psh, "-c", script})
		wantAt(t, e, "process.parent.executable", psh)
		wantAt(t, e, "process.parent.command_line", psh+" -c "+script)
		anc, _ := d["ancestry"].([]any)
		if len(anc) < 2 || len(anc) > 4 {
			t.Fatalf("ancestry %v: want 2 to 4 entries", anc)
		}
		wantAt(t, anc[0].(map[string]any), "executable", psh)
		wantAt(t, anc[1].(map[string]any), "executable", self)
		wantAt(t, anc[1].(map[string]any), "pid", float64(os.Getpid()))
		ea, _ := at(e, "audisp_enrich.ancestry").([]any)
		if len(ea) != len(anc) || ea[0] != psh || ea[1] != self {
			t.Errorf("ecs ancestry %v, full %v", ea, anc)
		}
		c.check(t, d, e)
	}
	a.Stop()
	validateFile(t, full)
	eb, err := os.ReadFile(ecs)
	if err != nil {
		t.Fatal(err)
	}
	audittest.ValidateJSONLinesAt(t, audittest.ECSSchemaPath, eb)
	fields := audittest.ECSFieldsOrSkip(t)
	for line := range bytes.Lines(eb) {
		if err := audittest.CheckECS(fields, line, "audisp_enrich"); err != nil {
			t.Errorf("%v\n%s", err, line)
		}
	}
}

// cgroupHierarchy returns the mount point of the cgroup v2 hierarchy, else
// of the v1 name=systemd one, or skips the test.
func cgroupHierarchy(t *testing.T) string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Skipf("no /proc/self/mountinfo: %v", err)
	}
	defer f.Close()
	v1 := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS ... - FSTYPE SOURCE SUPEROPTS
		l := strings.Fields(sc.Text())
		i := len(l) - 3
		if len(l) < 10 || l[i-1] != "-" {
			continue
		}
		switch {
		case l[i] == "cgroup2":
			return l[4]
		case l[i] == "cgroup" && strings.Contains(l[i+2], "name=systemd") && v1 == "":
			v1 = l[4]
		}
	}
	if v1 == "" {
		t.Skip("no cgroup v2 or v1 name=systemd hierarchy mounted")
	}
	return v1
}

// makeCgroup makes the cgroup rel (and its parents) under the hierarchy
// mounted at root and removes them, deepest first, when the test ends.
func makeCgroup(t *testing.T, root, rel string) string {
	t.Helper()
	p := filepath.Join(root, rel)
	var made []string // deepest first
	for d := p; d != root; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		}
		made = append(made, d)
	}
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Skipf("cannot make a cgroup under %s: %v", root, err)
	}
	// Cleanups run last registered first: register the shallowest first.
	for i := len(made) - 1; i >= 0; i-- {
		d := made[i]
		t.Cleanup(func() {
			// Its processes have exited; the kernel may take a moment
			// to drop them.
			var err error
			if !testsupport.Until(5*time.Second, func() bool { err = os.Remove(d); return err == nil || os.IsNotExist(err) }) {
				t.Errorf("removing cgroup %s: %v", d, err)
			}
		})
	}
	return p
}

// docFor returns the document of the exec of exe with argument arg. The
// file may be being written: only whole lines are read.
func docFor(t *testing.T, path, exe, arg string) map[string]any {
	b, _ := os.ReadFile(path)
	for line := range bytes.Lines(b) {
		if !bytes.HasSuffix(line, []byte("\n")) || !bytes.Contains(line, []byte(exe)) {
			continue
		}
		var d map[string]any
		if err := json.Unmarshal(line, &d); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		args, _ := at(d, "process.args").([]any)
		if at(d, "process.executable") == exe && len(args) == 2 && args[1] == arg {
			return d
		}
	}
	return nil
}

// at returns the value at the dotted path of d, or nil.
func at(d map[string]any, path string) any { return dig(d, strings.Split(path, ".")...) }

func wantAt(t *testing.T, d map[string]any, path string, want any) {
	t.Helper()
	got := at(d, path)
	gj, _ := json.Marshal(got)
	wj, _ := json.Marshal(want)
	if !bytes.Equal(gj, wj) {
		t.Errorf("%s = %s, want %s", path, gj, wj)
	}
}

// TestParentForSigmaOnDemo replays the demo capture (real IMA and auditd
// in a guest) with a Sigma rule on ParentImage and ParentCommandLine: the
// guest's pid 1 never execs in the capture, so its children's parent comes
// from pid 1's own earlier events (learnt running image), and the Sigma
// fields read that parent. Before, none of pid 1's children had a parent.
func TestParentForSigmaOnDemo(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules")
	if err := os.Mkdir(rules, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(rules, "init-child.yml"), `title: Download tool started by the init shell
id: 5b0c2f9e-0000-4000-8000-000000000018
author: audisp-enrich tests
level: medium
logsource:
    product: linux
    category: process_creation
detection:
    selection:
        Image|endswith: '/wget'
        ParentImage|endswith: '/busybox'
        ParentCommandLine|contains: ' /init'
    condition: selection
`)
	out := filepath.Join(dir, "all.json")
	cfg := filepath.Join(dir, "config.toml")
	writeFile(t, cfg, fmt.Sprintf(`[log]
syslog = false
[enrich.sigma]
rules = [%q]
[[sink]]
type = "file"
[sink.file]
path = %q
`, rules, out))
	if b, err := exec.Command(testsupport.PluginBinary(t), "replay", "--config", cfg, "testdata/demo/capture.log").CombinedOutput(); err != nil {
		t.Fatalf("replay: %v\n%s", err, b)
	}
	validateFile(t, out)
	matched, children, withParent := 0, 0, 0
	for _, d := range readDocs(t, out) {
		if d["sigma"] != nil {
			matched++
			wantAt(t, d, "process.executable", "/usr/bin/wget")
			wantAt(t, d, "process.parent.executable", "/bin/busybox")
		}
		// pid 1's exec children after its first event (IMA and the
		// scenario's commands).
		if at(d, "process.ppid") == float64(1) && at(d, "process.executable") != "/sbin/auditd" && at(d, "process.executable") != "/sbin/auditctl" {
			children++
			if at(d, "process.parent.executable") == "/bin/busybox" {
				withParent++
			}
		}
	}
	if matched != 1 {
		t.Errorf("%d events matched the ParentImage rule, want 1 (wget)", matched)
	}
	if children == 0 || withParent != children {
		t.Errorf("%d of pid 1's %d children have their parent", withParent, children)
	}
}
