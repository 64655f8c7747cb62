package plugin_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
)

// Hashes of the scenario (made-up digests, each 64 hex).
const (
	hashBlocked = "1111111111111111111111111111111111111111111111111111111111111111"
	hashUnknown = "2222222222222222222222222222222222222222222222222222222222222222"
	hashVTOnly  = "3333333333333333333333333333333333333333333333333333333333333333"
)

// imaExec is an exec event as auditd delivers it with an IMA audit policy:
// INTEGRITY_RULE (file hash), SYSCALL, EXECVE, CWD, PATH, PROCTITLE, EOE.
func imaExec(serial int, file, hash string) string {
	stamp := fmt.Sprintf("msg=audit(1764000000.%03d:%d):", serial%1000, serial)
	gs := "\x1d"
	return strings.Join([]string{
		fmt.Sprintf(`type=INTEGRITY_RULE %s file="%s" hash="sha256:%s" ppid=1 pid=%d auid=1000 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts0 ses=3 comm="bash" exe="/usr/bin/bash"%sAUID="alice" UID="root"`, stamp, file, hash, 4000+serial, gs),
		fmt.Sprintf(`type=SYSCALL %s arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=4 items=2 ppid=1 pid=%d auid=1000 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts0 ses=3 comm="x" exe="%s" key="T1204.002_e2e"%sARCH=x86_64 SYSCALL=execve AUID="alice" UID="root"`, stamp, 4000+serial, file, gs),
		fmt.Sprintf(`type=EXECVE %s argc=2 a0="%s" a1="--run"`, stamp, file),
		fmt.Sprintf(`type=CWD %s cwd="/tmp"`, stamp),
		fmt.Sprintf(`type=PATH %s item=0 name="%s" inode=1 dev=fe:00 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0`, stamp, file),
		fmt.Sprintf(`type=PROCTITLE %s proctitle="%s"`, stamp, file),
		fmt.Sprintf(`type=EOE %s`, stamp),
	}, "\n") + "\n"
}

// fakeVTFiles answers the VirusTotal v3 file endpoint from the documented
// shapes: the VT-only hash is known and malicious, everything else 404.
func fakeVTFiles(t *testing.T, requests *atomic.Int32) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.Header().Set("Content-Type", "application/json")
		hash, ok := strings.CutPrefix(r.URL.Path, "/api/v3/files/")
		if !ok || r.Header.Get("X-Apikey") != "e2e-test-key" {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":{"code":"WrongCredentialsError","message":"wrong key"}}`)
			return
		}
		if hash != hashVTOnly {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintf(w, `{"error":{"code":"NotFoundError","message":"File \"%s\" not found"}}`, hash)
			return
		}
		fmt.Fprintf(w, `{"data":{"id":"%s","type":"file","links":{"self":"x"},"attributes":{"sha256":"%s",
"last_analysis_stats":{"harmless":0,"malicious":41,"suspicious":2,"undetected":20,"timeout":0,"type-unsupported":3},
"reputation":-77,"meaningful_name":"dropper.bin","first_submission_date":1700000000,"last_analysis_date":1760000000,
"popular_threat_classification":{"suggested_threat_label":"trojan.e2e/test"}}}}`, hash, hash)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestEnrichmentEndToEnd runs the plugin binary on IMA exec events: a
// blocklisted hash, an unknown hash and a hash only the (fake) VirusTotal
// knows. Events leave at once with their tags and a pending status; the
// verdict document follows, judged by the hunting rules that test a
// verdict; everything validates against the schema.
func TestEnrichmentEndToEnd(t *testing.T) {
	var requests atomic.Int32
	vt := fakeVTFiles(t, &requests)
	dir := t.TempDir()
	bin := testsupport.PluginBinary(t)
	list := filepath.Join(dir, "block.txt")
	writeFile(t, list, "# test blocklist\n"+hashBlocked+"  evil-loader\n")
	keyFile := filepath.Join(dir, "vt.key")
	if err := os.WriteFile(keyFile, []byte("e2e-test-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "events.json")
	cfg := filepath.Join(dir, "config.toml")
	writeFile(t, cfg, fmt.Sprintf(`user = "root"
state_dir = %q
[log]
syslog = false
[status]
interval = "0s"
[enrich.blocklist]
reload_interval = "0s"
[[enrich.blocklist.lists]]
name = "local"
path = %q
[enrich.virustotal]
enabled = true
api_key_file = %q
host = %q
state_dir = %q
[[sink]]
type = "file"
[sink.file]
path = %q
`, dir, list, keyFile, vt.URL, dir, out))
	cmd := exec.Command(bin, "--config", cfg)
	cmd.Env = []string{}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	io.WriteString(stdin, imaExec(1, "/tmp/loader", hashBlocked)+imaExec(2, "/usr/local/bin/tool", hashUnknown)+imaExec(3, "/dev/shm/dropper", hashVTOnly))

	var docs []map[string]any
	ok := testsupport.Until(15*time.Second, func() bool {
		docs = readDocs(t, out)
		return len(docs) >= 6 // three events and a verdict for each pending hash
	})
	stdin.Close()
	_ = cmd.Wait()
	docs = readDocs(t, out)
	if !ok {
		t.Fatalf("got %d documents, want 6 (3 events + 3 verdicts); stderr:\n%s", len(docs), stderr.String())
	}
	validateFile(t, out)

	byHash := map[string]map[string]any{}
	var verdicts []map[string]any
	for _, d := range docs {
		if d["kind"] == "verdict" {
			verdicts = append(verdicts, d)
			continue
		}
		h := dig(d, "file", "hash", "sha256")
		byHash[fmt.Sprint(h)] = d
	}
	// Every event keeps its records joined: integrity, syscall, execve...
	for h, d := range byHash {
		var types []string
		for _, r := range d["records"].([]any) {
			types = append(types, r.(map[string]any)["type"].(string))
		}
		if strings.Join(types, ",") != "INTEGRITY_RULE,SYSCALL,EXECVE,CWD,PATH,PROCTITLE" {
			t.Errorf("%s: records %v", h, types)
		}
		if dig(d, "virustotal", "status") != "pending" {
			t.Errorf("%s: virustotal %v, want pending (max_wait 0)", h, d["virustotal"])
		}
		if !hasTechnique(d, "T1204.002") {
			t.Errorf("%s: no T1204.002 from the key: %v", h, d["threat"])
		}
	}
	blocked := byHash[hashBlocked]
	if blocked == nil || !hasTag(blocked, "blocklist:local") || !hasTag(blocked, "hunt:exec_from_temp_dir") || !hasTag(blocked, "hunt:blocklisted_hash") {
		t.Errorf("blocklisted event tags: %v", blocked["tags"])
	}
	if l := blocked["blocklist"].([]any)[0].(map[string]any); l["label"] != "evil-loader" || l["hash"] != hashBlocked {
		t.Errorf("blocklist hit %v", l)
	}
	if unknown := byHash[hashUnknown]; unknown == nil || unknown["blocklist"] != nil || hasTag(unknown, "hunt:exec_from_temp_dir") {
		t.Errorf("unknown-hash event: %v", unknown)
	}
	// Every pending lookup ends in a verdict document: a hit for the hash
	// VirusTotal knows, not_found (404) for the others.
	if len(verdicts) != 3 {
		t.Fatalf("%d verdict documents, want 3", len(verdicts))
	}
	var v map[string]any
	for _, d := range verdicts {
		switch dig(d, "virustotal", "hash") {
		case hashVTOnly:
			v = d
		case hashBlocked, hashUnknown:
			if dig(d, "virustotal", "status") != "not_found" {
				t.Errorf("verdict for %v: %v, want not_found", dig(d, "virustotal", "hash"), d["virustotal"])
			}
		default:
			t.Errorf("verdict for an unexpected hash: %v", d["virustotal"])
		}
	}
	if v == nil {
		t.Fatal("no verdict for the hash VirusTotal knows")
	}
	if dig(v, "virustotal", "status") != "hit" ||
		fmt.Sprint(dig(v, "virustotal", "malicious")) != "41" || dig(v, "virustotal", "threat_label") != "trojan.e2e/test" {
		t.Errorf("verdict %v", v["virustotal"])
	}
	// The verdict came after its event left as pending (max_wait 0): the
	// built-in virustotal_malicious rule judges the verdict document.
	if !strings.Contains(fmt.Sprint(v["hunt"]), "virustotal_malicious") || fmt.Sprint(dig(v, "event", "severity")) != "3" || !hasTag(v, "hunt:virustotal_malicious") {
		t.Errorf("verdict not judged by virustotal_malicious: hunt %v severity %v tags %v", v["hunt"], dig(v, "event", "severity"), v["tags"])
	}
	for _, d := range verdicts {
		if dig(d, "virustotal", "hash") != hashVTOnly && d["hunt"] != nil {
			t.Errorf("not_found verdict got hunting hits: %v", d["hunt"])
		}
	}
	related := fmt.Sprint(dig(v, "related", "events"))
	if !strings.Contains(related, fmt.Sprint(dig(byHash[hashVTOnly], "event", "id"))) {
		t.Errorf("verdict related %s does not name the waiting event %v", related, dig(byHash[hashVTOnly], "event", "id"))
	}
	if strings.Contains(stderr.String(), "e2e-test-key") {
		t.Error("the API key appears in the log")
	}
	t.Logf("%d VirusTotal requests for 3 hashes", requests.Load())
}

func readDocs(t *testing.T, path string) []map[string]any {
	return decodeLines[map[string]any](t, path)
}

func dig(d map[string]any, path ...string) any {
	var v any = d
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

func hasTag(d map[string]any, tag string) bool {
	tags, _ := d["tags"].([]any)
	for _, x := range tags {
		if x == tag {
			return true
		}
	}
	return false
}

func hasTechnique(d map[string]any, id string) bool {
	return strings.Contains(fmt.Sprint(dig(d, "threat", "technique")), id)
}
