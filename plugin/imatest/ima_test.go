package imatest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestIMA is the real-IMA end-to-end test; see docs/ima-test.md.
func TestIMA(t *testing.T) {
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
			t.Logf("console log, plugin stderr and guest output kept in %s", work)
			return
		}
		os.RemoveAll(work)
	})

	g, err := newGuestFiles()
	if err != nil {
		t.Fatal(err)
	}
	var plugin, config []byte
	if bin := buildPlugin(t, root, work); bin != "" {
		if plugin, err = os.ReadFile(bin); err != nil {
			t.Fatal(err)
		}
	}
	tree, err := buildTree(g, plugin, config)
	if err != nil {
		t.Fatal(err)
	}
	initrd := filepath.Join(work, "initramfs.cpio.gz")
	if err := tree.writeInitramfs(initrd); err != nil {
		t.Fatal(err)
	}
	prep := time.Since(start)

	res, err := boot(context.Background(), work, kernel, initrd, 120*time.Second)
	for name, body := range res.Files {
		os.WriteFile(filepath.Join(work, "guest-"+name), []byte(body), 0o644)
	}
	if err != nil {
		t.Fatalf("guest run failed: %v (console in %s)", err, work)
	}
	t.Logf("timing: host preparation %v, guest boot-to-poweroff %v", prep.Round(time.Millisecond), res.Duration.Round(time.Millisecond))
	if !res.Done {
		t.Fatalf("the guest did not send its results (console in %s/console.log)", work)
	}
	t.Logf("facts:\n%s", res.Files["facts.txt"])

	scs := scenarios(g)
	checkRaw(t, "auditlog", "audit.log", parseRaw(res.Files["audit.log"]), scs)
	if plugin == nil {
		t.Errorf("plugin/cmd/audisp-enrich is not in this tree: the guest ran cat as the plugin; only auditd's side was checked")
		checkRaw(t, "plugin-input", "the plugin's input (cat)", parseRaw(res.Files["raw.log"]), scs)
	}
}
