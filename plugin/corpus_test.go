package plugin_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/auditdtest"
)

// TestGenerateCorpus captures auditd's real plugin stream (format =
// string, ENRICHED) under an exec and file-write load. It runs only when
// CORPUS_OUT names the output file; CORPUS_EXECS sets the number of execs
// (default 200, about 1.5k records; 28000 gives about 200k records).
//
//	CORPUS_OUT=plugin/testdata/capture.log go test -run TestGenerateCorpus ./plugin
func TestGenerateCorpus(t *testing.T) {
	out := os.Getenv("CORPUS_OUT")
	if out == "" {
		t.Skip("set CORPUS_OUT to generate a corpus")
	}
	execs := 200
	if n := os.Getenv("CORPUS_EXECS"); n != "" {
		fmt.Sscan(n, &execs)
	}
	dir := t.TempDir()
	stream := filepath.Join(dir, "stream.log")
	tee := filepath.Join(dir, "capture.sh")
	writeFile(t, tee, "#!/bin/sh\nexec /bin/cat > "+stream+"\n")
	if err := os.Chmod(tee, 0o750); err != nil {
		t.Fatal(err)
	}
	plug := "active = yes\ndirection = out\npath = " + tee + "\ntype = always\nformat = string\n"
	a := auditdtest.Start(t, auditdtest.Options{Plugins: map[string]string{"capture.conf": plug}})
	work := t.TempDir()
	prog := filepath.Join(work, "worker")
	copyFile(t, "/bin/echo", prog, 0o755)
	a.AddRule("-a", "always,exit", "-F", "arch=b64", "-S", "execve", "-F", "dir="+work, "-k", "T1059.004_corpus")
	if err := os.Mkdir(work+"/data", 0o755); err != nil {
		t.Fatal(err)
	}
	a.AddRule("-w", work+"/data", "-p", "wa", "-k", "T1565.001_corpus")
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	for i := 0; i < execs; i++ {
		args := []string{fmt.Sprint("run ", i), "--flag", "quote\"d", strings.Repeat("x", i%40)}
		cmd := exec.Command(prog, args...)
		cmd.Dir = work
		if err := cmd.Run(); err != nil {
			t.Fatal(err)
		}
		if i%4 == 0 {
			if err := os.WriteFile(fmt.Sprintf("%s/data/file %d.txt", work, i%50), []byte("payload\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	time.Sleep(time.Second)
	a.Stop()
	b, err := os.ReadFile(stream)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) == 0 {
		t.Fatal("captured nothing")
	}
	if err := os.WriteFile(out, b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("captured %d records (%d bytes) from %d execs in %s into %s",
		strings.Count(string(b), "\n"), len(b), execs, time.Since(start).Round(time.Millisecond), out)
}
