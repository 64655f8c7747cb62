package imatest

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "embed"
)

//go:embed guest/demo.sh
var demoScript []byte

// envDemoOut names the directory TestDemoCapture writes the demo to
// (`make demo-capture`); the test is skipped without it.
const envDemoOut = "DEMO_CAPTURE_OUT"

// spawnerELF returns a static x86-64 executable that forks, runs path in
// the child (execve with argv {path} and no environment) and waits for it:
// a parent process for the exec events of the demo's chains.
func spawnerELF(path string) []byte {
	code := []byte{
		0xb8, 57, 0, 0, 0, // mov eax, 57 (fork)
		0x0f, 0x05, // syscall
		0x85, 0xc0, // test eax, eax
		0x75, 41, // jnz parent
		0x48, 0xbf, 0, 0, 0, 0, 0, 0, 0, 0, // mov rdi, path
		0x48, 0xbe, 0, 0, 0, 0, 0, 0, 0, 0, // mov rsi, argv
		0x31, 0xd2, // xor edx, edx (no environment)
		0xb8, 59, 0, 0, 0, // mov eax, 59 (execve)
		0x0f, 0x05, // syscall
		0xbf, 127, 0, 0, 0, // mov edi, 127
		0xb8, 60, 0, 0, 0, // mov eax, 60 (exit)
		0x0f, 0x05, // syscall
		// parent:
		0xbf, 0xff, 0xff, 0xff, 0xff, // mov edi, -1 (any child)
		0x31, 0xf6, // xor esi, esi
		0x31, 0xd2, // xor edx, edx
		0x45, 0x31, 0xd2, // xor r10d, r10d
		0xb8, 61, 0, 0, 0, // mov eax, 61 (wait4)
		0x0f, 0x05, // syscall
		0x31, 0xff, // xor edi, edi
		0xb8, 60, 0, 0, 0, // mov eax, 60 (exit)
		0x0f, 0x05, // syscall
	}
	argv := uint64(elfBase + elfHeaders + len(code)) // then {path, NULL}, then the path
	le := binary.LittleEndian
	le.PutUint64(code[13:], argv+16)
	le.PutUint64(code[23:], argv)
	body := le.AppendUint64(code, argv+16)
	body = le.AppendUint64(body, 0)
	return elfImage(append(append(body, path...), 0))
}

// demoFiles are the demo's executables, by guest path.
func demoFiles() map[string][]byte {
	return map[string][]byte{
		"usr/sbin/nginx":    spawnerELF("/usr/bin/bash"),
		"usr/bin/bash":      spawnerELF("/usr/bin/curl"),
		"usr/bin/curl":      tinyELF("curl: fetched http://198.51.100.7/k.b64\n"),
		"usr/bin/wget":      tinyELF("wget: fetched http://198.51.100.7/k.b64\n"),
		"usr/bin/base64":    tinyELF("base64: decoded k.b64 into kworkerds\n"),
		"payload/kworkerds": tinyELF("kworkerds: the demo's blocklisted payload\n"),
		"payload/kswapd0":   tinyELF("kswapd0: a miner named like a kernel thread\n"),
		"opt/demo/sshd":     tinyELF("sshd: not the real one\n"),
	}
}

// TestDemoCapture boots the IMA guest with guest/demo.sh as /init and
// writes the audit.log it sends back, with the demo's blocklist and
// VirusTotal answers, to $DEMO_CAPTURE_OUT (see `make demo-capture`).
func TestDemoCapture(t *testing.T) {
	outDir := os.Getenv(envDemoOut)
	if outDir == "" {
		t.Skip(envDemoOut + " not set (make demo-capture sets it)")
	}
	ensureTools(t)
	kernel := guestKernel(t)
	checkKernelConfig(t, kernel)
	root := moduleRoot(t)
	work := t.TempDir()
	g, err := newGuestFiles()
	if err != nil {
		t.Fatal(err)
	}
	plugin, err := os.ReadFile(buildPlugin(t, work))
	if err != nil {
		t.Fatal(err)
	}
	packaged, _, err := packagedConfig(root)
	if err != nil {
		t.Fatal(err)
	}
	config, err := guestPluginConfig(packaged)
	if err != nil {
		t.Fatal(err)
	}
	tree, err := buildTree(g, plugin, config)
	if err != nil {
		t.Fatal(err)
	}
	tree.file("init", 0o755, demoScript)
	files := demoFiles()
	for p, b := range files {
		tree.file(p, 0o755, b)
	}
	initrd := filepath.Join(work, "initramfs.cpio.gz")
	if err := tree.writeInitramfs(initrd); err != nil {
		t.Fatal(err)
	}
	res, err := boot(context.Background(), work, kernel, initrd, 240*time.Second)
	if err != nil || !res.Done {
		t.Fatalf("guest: %v, done %v; console:\n%s", err, res != nil && res.Done, res.Console)
	}
	facts := parseFacts(res.Files["facts.txt"])
	if facts["fatal"] != "" || facts["scenarios"] != "done" {
		t.Fatalf("guest /init: %v; console:\n%s", facts, res.Console)
	}
	log := res.Files["audit.log"] + "\n"
	for _, want := range []string{"type=INTEGRITY_RULE", "T1140-Deobfuscate", "T1574.006", "kworkerds", "nginx"} {
		if !strings.Contains(log, want) {
			t.Errorf("audit.log has no %q", want)
		}
	}
	bad := sha256hex(files["payload/kworkerds"])
	answers := fmt.Sprintf(demoAnswers, bad, bad)
	for name, body := range map[string]string{
		"capture.log":     log,
		"blocklist.txt":   "# The demo's blocklist: the payload /tmp/kworkerds.\n" + bad + "\n",
		"vt-answers.json": answers,
	} {
		if err := os.WriteFile(filepath.Join(outDir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("wrote %s: %d audit.log lines", outDir, strings.Count(log, "\n"))
}

// demoAnswers is the VirusTotal answer file of the demo: the payload's
// hash, as a v3 file object (made up for the demo; no lookup was made).
const demoAnswers = `{
  "%s": {"data": {"id": "%s", "type": "file", "attributes": {
    "meaningful_name": "kworkerds",
    "type_description": "ELF",
    "reputation": -42,
    "first_submission_date": 1795000000,
    "last_analysis_date": 1795600000,
    "last_analysis_stats": {"harmless": 0, "malicious": 38, "suspicious": 2, "undetected": 21, "timeout": 0},
    "popular_threat_classification": {"suggested_threat_label": "trojan.linux/demo-miner"}
  }}}
}
`

// TestSpawnerELF runs a spawner on the host: it starts its child (which
// writes a file) and waits for it.
func TestSpawnerELF(t *testing.T) {
	dir := t.TempDir()
	child := filepath.Join(dir, "child.sh")
	mark := filepath.Join(dir, "mark")
	if err := os.WriteFile(child, []byte("#!/bin/sh\necho ran > "+mark+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	spawner := filepath.Join(dir, "spawner")
	if err := os.WriteFile(spawner, spawnerELF(child), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(spawner).CombinedOutput(); err != nil {
		t.Fatalf("spawner: %v %s", err, out)
	}
	if b, err := os.ReadFile(mark); err != nil || string(b) != "ran\n" {
		t.Fatalf("the child did not run before the spawner exited: %q %v", b, err)
	}
}
