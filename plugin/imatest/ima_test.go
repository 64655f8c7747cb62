package imatest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
)

// TestIMA is the real-IMA end-to-end test; see docs/ima-test.md.
func TestIMA(t *testing.T) {
	testsupport.SkipShort(t, "boots Debian's kernel under QEMU (TCG) with IMA; root, about a minute")
	start := time.Now()
	ensureTools(t)
	kernel := guestKernel(t)
	checkKernelConfig(t, kernel)
	root := moduleRoot(t)

	work, err := os.MkdirTemp("", "audisp-enrich-ima-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv(envKeep) != "" {
			t.Logf("console log, plugin log (syslog), audit.log and guest output kept in %s", work)
			return
		}
		os.RemoveAll(work)
	})

	g, err := newGuestFiles()
	if err != nil {
		t.Fatal(err)
	}
	plugin, err := os.ReadFile(buildPlugin(t, work))
	if err != nil {
		t.Fatal(err)
	}
	packaged, from, err := packagedConfig(root)
	if err != nil {
		t.Fatalf("packaged config: %v", err)
	}
	config, err := guestPluginConfig(packaged)
	if err != nil {
		t.Fatalf("%s: %v", from, err)
	}
	os.WriteFile(filepath.Join(work, "config.toml"), config, 0o644)
	t.Logf("plugin config: %s with the test's blocklist, key map and file sink", from)
	tree, err := buildTree(g, plugin, config)
	if err != nil {
		t.Fatal(err)
	}
	if err := addGuestPackage(tree, work, g); err != nil {
		t.Fatalf("the guest's dpkg database: %v", err)
	}
	initrd := filepath.Join(work, "initramfs.cpio.gz")
	if err := tree.writeInitramfs(initrd); err != nil {
		t.Fatal(err)
	}
	prep := time.Since(start)

	// 7-10 s on an idle machine; the margin is for hosts busy with other tests.
	res, err := boot(context.Background(), work, kernel, initrd, 240*time.Second)
	for name, body := range res.Files {
		os.WriteFile(filepath.Join(work, "guest-"+name), []byte(body), 0o644)
	}
	if err != nil {
		t.Fatalf("guest run failed: %v (console in %s)", err, work)
	}
	t.Logf("timing: host preparation %v, guest boot-to-poweroff %v (QEMU CPU time %v)",
		prep.Round(time.Millisecond), res.Duration.Round(time.Millisecond), res.CPU.Round(time.Millisecond))
	if !res.Done {
		t.Fatalf("the guest did not send its results (console in %s/console.log)", work)
	}
	facts := parseFacts(res.Files["facts.txt"])
	if f := facts["fatal"]; f != "" {
		logDaemons(t, res.Files)
		t.Fatalf("guest /init gave up: %s (console in %s/console.log)", f, work)
	}
	for _, s := range []string{"s1", "s2", "s3", "s4", "s5", "s6", "s7", "s9", "s10", "s11"} {
		if facts[s+".rc"] != "0" {
			t.Errorf("%s exited %q in the guest (console in %s/console.log)", s, facts[s+".rc"], work)
		}
	}

	if facts["stop"] == "timeout" {
		t.Errorf("auditd or the plugin did not exit within 10 s of SIGTERM to auditd; both were killed")
	}
	t.Logf("guest uptime (s): /init %s, auditd+plugin+rules+policy ready %s (plugin process after %s00 ms, its start-up line %s00 ms later, package index complete %s00 ms later), scenarios done %s, auditd and plugin stopped %s",
		facts["uptime.init"], facts["uptime.ready"], facts["plugin.started_after_ds"], facts["plugin.ready_after_ds"], facts["packages.ready_after_ds"], facts["uptime.scenarios_done"], facts["uptime.stopped"])

	scs := scenarios(g)
	checkRaw(t, "auditlog", "audit.log", parseRaw(res.Files["audit.log"]), scs)
	checkPluginProcess(t, facts)
	docs := parseDocs(t, res.Files["events.jsonl"])
	checkPlugin(t, docs, scs)
	checkSchema(t, root, docs)
	checkNoParseErrors(t, res.Files)
	if t.Failed() {
		logDaemons(t, res.Files)
	}
	t.Logf("timing: whole test %v", time.Since(start).Round(time.Millisecond))
}

// logDaemons prints what auditd and the plugin said in the guest (the
// plugin logs to syslog; auditd's own start-up errors go to auditd.stderr),
// so that a failure on a machine whose work directory is gone can be read
// from the test output alone.
func logDaemons(t *testing.T, files map[string]string) {
	var lines []string
	for _, l := range strings.Split(files["syslog"], "\n") {
		if strings.Contains(l, "audisp-enrich") || strings.Contains(l, "auditd") {
			lines = append(lines, l)
		}
	}
	t.Logf("guest syslog lines of auditd and audisp-enrich:\n%s", strings.Join(lines, "\n"))
	t.Logf("guest auditd.stderr:\n%s", files["auditd.stderr"])
}
