package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/audisp-enrich/audisp-enrich/enrich/fleet"
	"github.com/audisp-enrich/audisp-enrich/enrich/virustotal/vtfake"
	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
)

// TestReplayFleet runs the fleet end to end with the real commands: a
// kfake broker, `audisp-enrich verdicts` (the service, the only one with
// the VirusTotal key, against the VirusTotal fake over HTTP) and
// `audisp-enrich replay` of the IMA capture with [enrich.fleet] and a
// kafka sink. kcat, the independent consumer, reads the sink's topic back:
// each event with a hash went out pending, and a verdict document with the
// fake's answer follows for each hash, naming the event; the service made
// one request per hash. A second replay (a host restart) answers every
// hash from the topic and causes no request.
func TestReplayFleet(t *testing.T) {
	testsupport.SkipShort(t, "starts a Kafka broker, the verdict service and a replay; reads back with kcat")
	kcatPath, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatalf("kcat is required as the independent Kafka consumer (Debian package kcat): %v", err)
	}
	const vtKey = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	kf, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer kf.Close()
	broker := kf.ListenAddrs()[0]
	fake := vtfake.New(t, vtKey)
	capture, err := filepath.Abs("../../audit/testdata/ima.log")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(capture)
	if err != nil {
		t.Fatal(err)
	}
	malicious := map[string]int64{} // every IMA hash of the capture, with the fake's answer
	for i, m := range regexp.MustCompile(`hash="(?:sha256:)?([0-9a-f]{40,64})"`).FindAllSubmatch(raw, -1) {
		h := string(m[1])
		malicious[h] = int64(i)
		fake.Set(h, vtfake.FileReply(h, int64(i)))
	}
	if len(malicious) != 4 {
		t.Fatalf("the capture has %d IMA hashes, want 4", len(malicious))
	}

	dir := t.TempDir()
	keyFile := filepath.Join(dir, "verdicts.key")
	pub, err := fleet.GenerateKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	svcConf := filepath.Join(dir, "service.toml")
	writeFile(t, svcConf, fmt.Sprintf(`state_dir = %q
[log]
level = "warn"
[verdicts]
brokers = [%q]
signing_key_file = %q
partitions = 2
replication_factor = 1
[enrich.virustotal]
enabled = true
api_key = %q
host = %q
per_minute = 0
per_day = 0
per_month = 0
`, filepath.Join(dir, "service-state"), broker, keyFile, vtKey, fake.URL()))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if out, err := child(ctx, "verdicts", "--config", svcConf, "init").CombinedOutput(); err != nil {
		t.Fatalf("verdicts init: %v\n%s", err, out)
	}
	svc := child(ctx, "verdicts", "--config", svcConf)
	var svcErr bytes.Buffer
	svc.Stderr = &svcErr
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = svc.Process.Signal(os.Interrupt)
		_ = svc.Wait()
		if svcErr.Len() > 0 {
			t.Logf("verdict service stderr:\n%s", svcErr.String())
		}
	}()

	// Each replay writes to its own topics, <which>.audit and <which>.verdict.
	hostConf := func(which string) string {
		path := filepath.Join(dir, which+".toml")
		writeFile(t, path, fmt.Sprintf(`state_dir = %q
[log]
level = "warn"
[enrich.fleet]
enabled = true
brokers = [%q]
verdict_public_key = %q
host_name = "replayer"
[[sink]]
name = "out"
type = "kafka"
[sink.kafka]
brokers = [%q]
topic = "%s.{kind}"
`, filepath.Join(dir, "host-state"), broker, pub, broker, which))
		return path
	}
	replay := func(which string) {
		t.Helper()
		rctx, rcancel := context.WithTimeout(ctx, 2*time.Minute)
		defer rcancel()
		cmd := child(rctx, "replay", "--config", hostConf(which), capture)
		var errb bytes.Buffer
		cmd.Stderr = &errb
		if err := cmd.Run(); err != nil || errb.Len() > 0 {
			t.Fatalf("replay %s: %v\n%s\nservice:\n%s", which, err, errb.String(), svcErr.String())
		}
	}
	replay("first")

	type doc struct {
		Kind  string `json:"kind"`
		Event struct {
			ID string `json:"id"`
		} `json:"event"`
		File struct {
			Hash map[string]string `json:"hash"`
		} `json:"file"`
		Hashes []struct {
			Algo string `json:"algo"`
			Hex  string `json:"hex"`
		} `json:"hashes"`
		VirusTotal *struct {
			Status    string `json:"status"`
			Hash      string `json:"hash"`
			Malicious int64  `json:"malicious"`
		} `json:"virustotal"`
		Related struct {
			Events []string `json:"events"`
		} `json:"related"`
	}
	read := func(topic string) []doc {
		t.Helper()
		kctx, kcancel := context.WithTimeout(ctx, 30*time.Second)
		defer kcancel()
		cmd := exec.CommandContext(kctx, kcatPath, "-b", broker, "-C", "-t", topic, "-o", "beginning", "-e", "-q")
		var kerr bytes.Buffer
		cmd.Stderr = &kerr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("kcat %s: %v\n%s", topic, err, kerr.String())
		}
		var docs []doc
		sc := bufio.NewScanner(bytes.NewReader(out))
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			if len(bytes.TrimSpace(sc.Bytes())) == 0 {
				continue // kcat separates messages that end in a newline with an empty line
			}
			var d doc
			if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
				t.Fatalf("%s: %v: %.200s", topic, err, sc.Text())
			}
			docs = append(docs, d)
		}
		return docs
	}
	// check reads the topics of one replay: every event with a hash got
	// the fleet's verdict (the fake's answer for its primary hash,
	// virustotal.hash) at once, or went out pending and a verdict document
	// with that answer follows, naming it; VirusTotal got one request per
	// primary hash of the capture, whichever replay asked.
	check := func(which string) (direct int) {
		t.Helper()
		events, verdicts := read(which+".audit"), read(which+".verdict")
		pending := map[string][]string{} // primary hash -> ids of the events that went out pending
		primary := map[string]bool{}
		for _, d := range events {
			switch {
			case d.VirusTotal == nil:
			case d.VirusTotal.Status == "pending":
				pending[d.VirusTotal.Hash] = append(pending[d.VirusTotal.Hash], d.Event.ID)
				primary[d.VirusTotal.Hash] = true
			case d.VirusTotal.Status == "hit" && d.VirusTotal.Malicious == malicious[d.VirusTotal.Hash]:
				direct++
				primary[d.VirusTotal.Hash] = true
			default:
				t.Errorf("%s: event %s: virustotal %+v, want pending or the fake's answer", which, d.Event.ID, d.VirusTotal)
			}
		}
		if len(primary) != 3 { // event 13 has two hashes; the first is its primary one
			t.Errorf("%s: %d primary hashes, want 3", which, len(primary))
		}
		if len(verdicts) != len(pending) {
			t.Errorf("%s: %d verdict documents for %d pending hashes", which, len(verdicts), len(pending))
		}
		for _, v := range verdicts {
			if len(v.Hashes) != 1 || v.VirusTotal == nil {
				t.Errorf("%s: verdict document %+v", which, v)
				continue
			}
			h := v.Hashes[0].Hex
			if v.VirusTotal.Status != "hit" || v.VirusTotal.Malicious != malicious[h] {
				t.Errorf("%s: verdict document for %s: %+v, want a hit with %d malicious", which, h[:8], v.VirusTotal, malicious[h])
			}
			if strings.Join(v.Related.Events, ",") != strings.Join(pending[h], ",") {
				t.Errorf("%s: verdict document for %s names %v, want the pending events %v", which, h[:8], v.Related.Events, pending[h])
			}
		}
		if reqs := fake.Requests(); len(reqs) != len(primary) {
			t.Errorf("%s: VirusTotal got %d requests %v, want one per primary hash", which, len(reqs), reqs)
		}
		return direct
	}
	if direct := check("first"); direct != 0 {
		t.Errorf("first replay: %d events had a verdict before anyone asked", direct)
	}

	// A restarted host (the same replay again, a new process) reads the
	// verdicts from the topic: events get them at once, or (those enriched
	// before the host read the topic) a verdict document follows; no
	// request reaches VirusTotal.
	replay("again")
	t.Logf("second replay: %d events answered at once from the topic", check("again"))
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}
