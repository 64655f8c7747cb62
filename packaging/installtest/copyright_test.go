package installtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCopyrightCoversModules: every module linked into the binary (go list
// -deps of the command, as the Makefile builds it) has a stanza in
// packaging/copyright, and every stanza names a linked module, so that a
// new or dropped dependency cannot slip past the copyright file. TestRPM
// checks the same against `go version -m` of the packaged binary.
func TestCopyrightCoversModules(t *testing.T) {
	root := repoRoot(t)
	cmd := exec.Command("go", "list", "-deps", "-f", "{{with .Module}}{{if not .Main}}{{.Path}}{{end}}{{end}}", "./plugin/cmd/audisp-enrich")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	checkCopyrightModules(t, root, strings.Fields(string(out)))
}

// builtModules returns the dependency modules `go version -m` lists for
// the binary bin.
func builtModules(t *testing.T, bin string) []string {
	t.Helper()
	var mods []string
	for _, l := range strings.Split(run(t, "go", "version", "-m", bin), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "dep" {
			mods = append(mods, f[1])
		}
	}
	if len(mods) == 0 {
		t.Fatalf("go version -m %s lists no modules", bin)
	}
	return mods
}

// checkCopyrightModules fails for every module of mods that no
// "Files: vendor/MODULE/..." pattern of packaging/copyright covers, and
// for every vendor/ pattern that covers none of them (vendor/go/* is the
// standard library).
func checkCopyrightModules(t *testing.T, root string, mods []string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "packaging", "copyright"))
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, l := range strings.Split(string(data), "\n") {
		if files, ok := strings.CutPrefix(l, "Files: "); ok {
			for _, p := range strings.Fields(files) {
				if strings.HasPrefix(p, "vendor/") && p != "vendor/go/*" {
					patterns = append(patterns, p)
				}
			}
		}
	}
	covers := func(p, m string) bool {
		return strings.HasPrefix("vendor/"+m+"/", strings.TrimSuffix(p, "*"))
	}
	seen := map[string]bool{}
	for _, m := range mods {
		if seen[m] {
			continue
		}
		seen[m] = true
		ok := false
		for _, p := range patterns {
			ok = ok || covers(p, m)
		}
		if !ok {
			t.Errorf("packaging/copyright has no stanza for the linked module %s (add Files: vendor/%s/* with its copyright and license)", m, m)
		}
	}
	for _, p := range patterns {
		used := false
		for m := range seen {
			used = used || covers(p, m)
		}
		if !used {
			t.Errorf("packaging/copyright: Files: %s names no module linked into the binary (stale)", p)
		}
	}
}
