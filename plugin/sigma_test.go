package plugin_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
)

// sigmaWorkerRule matches the worker executions of testdata/capture.log.
var sigmaWorkerRule = testsupport.SigmaRule("Corpus worker run with a flag", "5b0c2f9e-0000-4000-8000-000000000001", "high",
	[]string{"attack.execution", "attack.t1059.004"}, "Image|endswith: '/worker'", "CommandLine|contains: ' --flag '")

// TestSigmaReplay: with [enrich.sigma] set, replayed events carry the
// sigma[] hits, the rule's technique and severity, valid against the
// schema, and a sink filter on the tag sigma:<id> passes exactly them.
func TestSigmaReplay(t *testing.T) {
	dir := t.TempDir()
	bin := testsupport.PluginBinary(t)
	rules := filepath.Join(dir, "rules")
	if err := os.Mkdir(rules, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(rules, "worker.yml"), sigmaWorkerRule)
	all, hits := filepath.Join(dir, "all.json"), filepath.Join(dir, "hits.json")
	cfg := filepath.Join(dir, "config.toml")
	writeFile(t, cfg, fmt.Sprintf(`[log]
syslog = false
[enrich.sigma]
rules = [%q]
[[sink]]
type = "file"
name = "all"
[sink.file]
path = %q
[[sink]]
type = "file"
name = "hits"
[sink.filter]
tags = ["sigma:5b0c2f9e-0000-4000-8000-000000000001"]
[sink.file]
path = %q
`, rules, all, hits))
	if out, err := exec.Command(bin, "replay", "--config", cfg, "testdata/capture.log").CombinedOutput(); err != nil {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	validateFile(t, all)
	validateFile(t, hits)
	matched := 0
	for _, d := range readDocs(t, all) {
		exe := fmt.Sprint(dig(d, "process", "executable"))
		args := fmt.Sprint(dig(d, "process", "args"))
		isExec := d["sigma"] != nil
		if want := strings.HasSuffix(exe, "/worker") && strings.Contains(args, "--flag") && dig(d, "event", "outcome") == "success"; isExec && !want {
			t.Errorf("unexpected match: %v %v", exe, args)
		}
		if !isExec {
			continue
		}
		matched++
		h := d["sigma"].([]any)[0].(map[string]any)
		if h["id"] != "5b0c2f9e-0000-4000-8000-000000000001" || h["level"] != "high" || h["author"] != "audisp-enrich tests" {
			t.Errorf("hit %v", h)
		}
		if !hasTechnique(d, "T1059.004") || fmt.Sprint(dig(d, "event", "severity")) != "3" {
			t.Errorf("threat %v, severity %v", d["threat"], dig(d, "event", "severity"))
		}
	}
	if matched == 0 {
		t.Fatal("no event matched the rule")
	}
	if n := len(readDocs(t, hits)); n != matched {
		t.Errorf("filtered sink has %d documents, want the %d matches", n, matched)
	}
}

// TestSigmaCheckConfig: check-config names a broken rule with file and
// line, prints the counts, and exits 0; a missing rule directory is a
// config error.
func TestSigmaCheckConfig(t *testing.T) {
	dir := t.TempDir()
	bin := testsupport.PluginBinary(t)
	rules := filepath.Join(dir, "rules")
	if err := os.Mkdir(rules, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(rules, "good.yml"), sigmaWorkerRule)
	writeFile(t, filepath.Join(rules, "bad.yml"), strings.Replace(strings.Replace(sigmaWorkerRule, "0001", "0002", 1),
		"condition: selection", "condition: selection and", 1))
	cfg := filepath.Join(dir, "config.toml")
	writeFile(t, cfg, fmt.Sprintf("user = \"root\"\n[enrich.sigma]\nrules = [%q]\n", rules))
	out, err := exec.Command(bin, "check-config", cfg).CombinedOutput()
	if err != nil {
		t.Fatalf("check-config: %v\n%s", err, out)
	}
	for _, want := range []string{filepath.Join(rules, "bad.yml") + ":15: invalid: condition:", "sigma: process_creation: 1 loaded, 1 skipped", ": ok"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// A directory without rule files (a wrong path, a link to an empty
	// directory) loads, with a warning.
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, cfg, fmt.Sprintf("user = \"root\"\n[enrich.sigma]\nrules = [%q, %q]\n", rules, empty))
	out, err = exec.Command(bin, "check-config", cfg).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "warning: sigma: "+empty+": no rule file") {
		t.Errorf("check-config with an empty rule directory: %v\n%s", err, out)
	}
	writeFile(t, cfg, fmt.Sprintf("[enrich.sigma]\nrules = [%q]\n", filepath.Join(dir, "missing")))
	if out, err := exec.Command(bin, "check-config", cfg).CombinedOutput(); err == nil {
		t.Errorf("check-config accepted a missing rule directory:\n%s", out)
	}
}
