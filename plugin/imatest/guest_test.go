package imatest

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

//go:embed guest/init.sh
var initScript []byte

//go:embed guest/auditd.conf
var auditdConf []byte

//go:embed guest/audisp-enrich.conf
var pluginConf []byte

// Users of the guest. The plugin's service user owns nothing but its output
// directory; alice is the login (audit) user of scenario 7 and bob the user
// it runs as.
const (
	guestPasswd = "root:x:0:0:root:/root:/bin/sh\n" +
		"audisp-enrich:x:998:998:audisp-enrich service:/nonexistent:/bin/false\n" +
		"alice:x:1000:1000:Alice:/home/alice:/bin/sh\n" +
		"bob:x:1001:1001:Bob:/home/bob:/bin/sh\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
	guestGroup = "root:x:0:\naudisp-enrich:x:998:\nalice:x:1000:\nbob:x:1001:\nnogroup:x:65534:\n"
	serviceUID = 998
)

// tinyELF returns a minimal static x86-64 executable that writes msg to
// stdout and exits 0: one ELF header, one PT_LOAD program header, 33 bytes
// of code, then msg. Different messages give different files, so every
// scenario execs bytes whose SHA-256 is known before the guest boots.
func tinyELF(msg string) []byte {
	code := []byte{
		0xb8, 1, 0, 0, 0, // mov eax, 1 (write)
		0xbf, 1, 0, 0, 0, // mov edi, 1 (stdout)
		0x48, 0x8d, 0x35, 16, 0, 0, 0, // lea rsi, [rip+16] (msg follows the code)
		0xba, 0, 0, 0, 0, // mov edx, len(msg)
		0x0f, 0x05, // syscall
		0xb8, 60, 0, 0, 0, // mov eax, 60 (exit)
		0x31, 0xff, // xor edi, edi
		0x0f, 0x05, // syscall
	}
	binary.LittleEndian.PutUint32(code[18:], uint32(len(msg)))
	return elfImage(append(code, msg...))
}

// elfBase is where elfImage loads the file; its code starts at
// elfBase+elfHeaders.
const (
	elfBase    = 0x400000
	elfHeaders = 64 + 56
)

// elfImage wraps body (code first, then its data) in an ELF header and
// one read+execute PT_LOAD segment that maps the whole file at elfBase.
func elfImage(body []byte) []byte {
	size := uint64(elfHeaders + len(body))
	var b bytes.Buffer
	b.Write([]byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	le := binary.LittleEndian
	binary.Write(&b, le, struct {
		Type, Machine                            uint16
		Version                                  uint32
		Entry, Phoff, Shoff                      uint64
		Flags                                    uint32
		Ehsize, Phentsize, Phnum, Shentsize      uint16
		Shnum, Shstrndx                          uint16
		PType, PFlags                            uint32
		POffset, PVaddr, PPaddr, PFilesz, PMemsz uint64
		PAlign                                   uint64
	}{
		Type: 2, Machine: 62, Version: 1, Entry: elfBase + elfHeaders, Phoff: 64,
		Ehsize: 64, Phentsize: 56, Phnum: 1,
		PType: 1, PFlags: 5, PVaddr: elfBase, PPaddr: elfBase, PFilesz: size, PMemsz: size, PAlign: 0x1000,
	})
	b.Write(body)
	return b.Bytes()
}

func sha256hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// guestFiles are the executables of the scenarios, by role.
type guestFiles struct {
	busybox  []byte
	fresh    []byte // s1 /opt/imatest/fresh
	dropper  []byte // s2 /payload/dropper, run from /dev/shm/dropper
	script   []byte // s3 /opt/imatest/script.sh
	helloV1  []byte // s4 "/opt/imatest/with space/hello world"
	helloV2  []byte // s5 the same path after the guest rewrote it
	b64dec   []byte // s6 /opt/imatest/b64dec, watched with -k T1140_decode
	userprog []byte // s7 /opt/imatest/userprog, run as bob with alice's login uid
	pkgNC    []byte // s9 guestPkgNC as its package installed it, s10 a copy at guestRelocated
	pkgED    []byte // guestPkgED as its package installed it
	pkgEDv2  []byte // s11 /payload/imatest-ed-v2, written over guestPkgED by /init
}

func newGuestFiles() (*guestFiles, error) {
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return nil, err
	}
	return &guestFiles{
		busybox:  bb,
		fresh:    tinyELF("imatest s1: a fresh binary ran\n"),
		dropper:  tinyELF("imatest s2: a blocklisted dropper ran from /dev/shm\n"),
		script:   []byte("#!/bin/sh\necho 'imatest s3: a script ran through its interpreter'\n"),
		helloV1:  tinyELF("imatest s4: hello from a path with a space\n"),
		helloV2:  tinyELF("imatest s5: hello again, the content changed\n"),
		b64dec:   tinyELF("imatest s6: pretend to decode base64\n"),
		userprog: tinyELF("imatest s7: run by bob, logged in as alice\n"),
		pkgNC:    tinyELF("imatest s9/s10: a package's netcat\n"),
		pkgED:    tinyELF("imatest: a package's editor\n"),
		pkgEDv2:  tinyELF("imatest s11: a package's editor, changed in place\n"),
	}, nil
}

// buildTree lays out the guest's root file system. plugin is the static
// audisp-enrich binary and config its config file.
func buildTree(g *guestFiles, plugin, config []byte) (fsTree, error) {
	t := fsTree{}
	for _, d := range []string{"proc", "sys", "dev", "tmp", "run", "root", "etc/audit/plugins.d",
		"var/log/audit", "var/lib", "usr/bin", "home/alice", "home/bob", "usr/sbin", "sbin"} {
		t.mkdirAll(d)
	}
	t.symlink("var/run", "/run")
	t.file("bin/busybox", 0o755, g.busybox)
	t.file("init", 0o755, initScript)
	t.file("etc/passwd", 0o644, []byte(guestPasswd))
	t.file("etc/group", 0o644, []byte(guestGroup))
	t.file("etc/nsswitch.conf", 0o644, []byte("passwd: files\ngroup: files\n"))
	t.file("etc/audit/auditd.conf", 0o640, auditdConf)
	t.file("etc/audit/plugins.d/audisp-enrich.conf", 0o640, pluginConf)
	for _, bin := range []string{"/sbin/auditd", "/sbin/auditctl"} {
		if err := t.copyFile(bin, bin, 0o755); err != nil {
			return nil, err
		}
		libs, err := sharedLibs(bin)
		if err != nil {
			return nil, err
		}
		for _, l := range libs {
			if err := t.copyFile(l, l, 0o755); err != nil {
				return nil, err
			}
		}
	}

	// The plugin: root:root 0750 as packaged; its output directory belongs
	// to the service user so that it can still write after dropping root.
	t.file("usr/sbin/audisp-enrich", 0o750, plugin)
	t.file(guestConfig, 0o640, config)
	t.file(guestBlocklist, 0o644, guestBlocklistFile(g))
	t.mkdirAll("var/log/audisp-enrich")
	t["var/log/audisp-enrich"].uid, t["var/log/audisp-enrich"].gid = serviceUID, serviceUID
	t["var/log/audisp-enrich"].mode = 0o750
	t.mkdirAll("var/lib/audisp-enrich")
	t["var/lib/audisp-enrich"].uid, t["var/lib/audisp-enrich"].gid = serviceUID, serviceUID

	t.file("opt/imatest/fresh", 0o755, g.fresh)
	t.file("payload/dropper", 0o755, g.dropper)
	t.file("opt/imatest/script.sh", 0o755, g.script)
	t.file("opt/imatest/with space/hello world", 0o755, g.helloV1)
	t.file("payload/hello-v2", 0o644, g.helloV2)
	t.file("opt/imatest/b64dec", 0o755, g.b64dec)
	t.file("opt/imatest/userprog", 0o755, g.userprog)
	t.file("payload/imatest-ed-v2", 0o644, g.pkgEDv2)
	return t, nil
}

// bootResult is what one guest run left behind.
type bootResult struct {
	Console  string            // ttyS0: kernel log and /init's messages
	Files    map[string]string // sections sent over ttyS1, by name
	Done     bool              // the guest reached the end of its output
	Duration time.Duration     // wall time from QEMU's start to its exit
	CPU      time.Duration     // QEMU's user+system CPU time (less sensitive to host load)
}

// boot runs QEMU with software emulation until the guest powers off or
// timeout passes (then QEMU is killed by its PID). The console goes to
// dir/console.log and the guest's results to dir/ttyS1.out.
func boot(ctx context.Context, dir, kernel, initrd string, timeout time.Duration) (*bootResult, error) {
	console := filepath.Join(dir, "console.log")
	out := filepath.Join(dir, "ttyS1.out")
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64",
		"-accel", "tcg", "-nographic", "-no-reboot", "-m", "1024", "-smp", "1",
		"-nic", "none", "-monitor", "none",
		"-serial", "file:"+console, "-serial", "file:"+out,
		"-kernel", kernel, "-initrd", initrd,
		"-append", "console=ttyS0 panic=-1 audit=1 audit_backlog_limit=8192 ima_hash=sha256 loglevel=4 "+os.Getenv(envAppend))
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	start := time.Now()
	err := cmd.Run()
	res := &bootResult{Duration: time.Since(start)}
	if cmd.ProcessState != nil {
		res.CPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	c, _ := os.ReadFile(console)
	res.Console = string(c)
	o, _ := os.ReadFile(out)
	res.Files, res.Done = splitSections(string(o))
	if ctx.Err() != nil {
		return res, fmt.Errorf("QEMU killed after %v (timeout)", timeout)
	}
	if err != nil {
		return res, fmt.Errorf("qemu-system-x86_64: %v: %s", err, stderr.Bytes())
	}
	return res, nil
}

// splitSections cuts the ttyS1 stream into its "@@imatest-file NAME" ...
// "@@imatest-end" sections. done reports whether "@@imatest-done" arrived.
func splitSections(s string) (files map[string]string, done bool) {
	files = map[string]string{}
	s = strings.ReplaceAll(s, "\r", "")
	var name string
	var body strings.Builder
	for _, line := range strings.SplitAfter(s, "\n") {
		trim := strings.TrimRight(line, "\n")
		switch {
		case name == "" && strings.HasPrefix(trim, "@@imatest-file "):
			name = strings.TrimPrefix(trim, "@@imatest-file ")
			body.Reset()
		case name != "" && trim == "@@imatest-end":
			files[name] = strings.TrimSuffix(body.String(), "\n")
			name = ""
		case name != "":
			body.WriteString(line)
		case trim == "@@imatest-done":
			done = true
		}
	}
	return files, done
}
