package imatest

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

// TestNewcReadByGNUCpio checks the newc writer against an independent
// reader, GNU cpio (Debian package cpio).
func TestNewcReadByGNUCpio(t *testing.T) {
	ensureTools(t)
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Fatalf("GNU cpio is needed to check the initramfs writer (apt-get install cpio): %v", err)
	}
	tr := fsTree{}
	tr.file("opt/with space/odd", 0o750, []byte("12345")) // 5 bytes: exercises padding
	tr.symlink("bin/sh", "busybox")
	tr.mkdirAll("var/log/x")
	var b bytes.Buffer
	if err := tr.writeNewc(&b); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("cpio", "-it", "--quiet")
	cmd.Stdin = bytes.NewReader(b.Bytes())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -it: %v\n%s", err, out)
	}
	want := "bin\nbin/sh\nopt\nopt/with space\nopt/with space/odd\nvar\nvar/log\nvar/log/x\n"
	if string(out) != want {
		t.Errorf("cpio -it listed\n%s\nwant\n%s", out, want)
	}
	cmd = exec.Command("cpio", "-i", "--quiet", "--to-stdout", "opt/with space/odd")
	cmd.Stdin = bytes.NewReader(b.Bytes())
	if out, err := cmd.Output(); err != nil || string(out) != "12345" {
		t.Errorf("cpio extracted %q, %v; want 12345", out, err)
	}
	cmd = exec.Command("cpio", "-itv", "--quiet")
	cmd.Stdin = bytes.NewReader(b.Bytes())
	out, _ = cmd.Output()
	if !strings.Contains(string(out), "bin/sh -> busybox") || !strings.Contains(string(out), "-rwxr-x---") {
		t.Errorf("cpio -itv: symlink or mode lost:\n%s", out)
	}
}
