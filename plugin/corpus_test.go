package plugin_test

import (
	"errors"
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
// CORPUS_OUT names the output file; CORPUS_EXECS sets the number of
// iterations (default 200, about 1.5k records; 28000 gives about 200k
// records). CORPUS_KIND=mixed selects the second load (see mixedLoad):
// arguments the kernel hex-encodes, env runs and several kinds of watched
// file writes.
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
	kind := os.Getenv("CORPUS_KIND")
	if kind == "mixed" {
		copyFile(t, "/usr/bin/env", filepath.Join(work, "envrun"), 0o755)
	} else if kind != "" {
		t.Fatalf("CORPUS_KIND=%q: want mixed or nothing", kind)
	}
	start := time.Now()
	for i := 0; i < execs; i++ {
		if kind == "mixed" {
			mixedLoad(t, work, i)
			continue
		}
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

// mixedLoad is one iteration of the second corpus's load in work (whose
// execs and data/ writes the rules watch): the worker with arguments the
// kernel hex-encodes (spaces, quotes, tabs, UTF-8, an argument count
// that varies up to 40); every third iteration through env with
// variables and -i, so that two execs share a command line shape; and a
// write, an append, a chmod, a rename or an unlink in data/, in turn.
func mixedLoad(t *testing.T, work string, i int) {
	t.Helper()
	args := []string{fmt.Sprintf("arg with spaces %d", i), "tab\there", "caf\u00e9 \u00fcber", `say "hi"`}
	for k := range i % 37 {
		args = append(args, fmt.Sprintf("opt%d=%x", k, i*k))
	}
	var cmd *exec.Cmd
	if i%3 == 0 {
		cmd = exec.Command("./envrun", append([]string{"-i", "LANG=C.UTF-8", fmt.Sprintf("RUN_ID=%d", i), "NOTE=two words", "./worker"}, args...)...)
	} else {
		cmd = exec.Command("./worker", args...)
	}
	cmd.Dir = work
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("%s/data/file %d.txt", work, i%50)
	var err error
	switch i % 5 {
	case 0:
		err = os.WriteFile(name, []byte("payload\n"), 0o644)
	case 1:
		var f *os.File
		if f, err = os.OpenFile(name, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			_, err = f.WriteString("more\n")
			err = errors.Join(err, f.Close())
		}
	case 2:
		if err = os.WriteFile(name, nil, 0o644); err == nil {
			err = os.Chmod(name, 0o600)
		}
	case 3:
		if err = os.WriteFile(name, []byte("x"), 0o644); err == nil {
			err = os.Rename(name, name+".moved")
		}
	default:
		if err = os.WriteFile(name+".tmp", []byte("y"), 0o644); err == nil {
			err = os.Remove(name + ".tmp")
		}
	}
	if err != nil {
		t.Fatal(err)
	}
}
