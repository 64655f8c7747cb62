package fleet

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
)

// TestHostProcess is the host of BenchmarkHostFollowCPU, run by it in a
// child process of this test binary (so that the broker's and the
// producer's CPU are not counted): with FLEET_CPU_BROKER set it starts a
// Host following that broker (or, with FLEET_CPU_FLEET=off, nothing: the
// baseline of an idle test binary), prints "ready" once the verdicts topic
// is read, and runs until its stdin closes. Otherwise it skips.
func TestHostProcess(t *testing.T) {
	addr := os.Getenv("FLEET_CPU_BROKER")
	if addr == "" {
		t.Skip("the child process of BenchmarkHostFollowCPU")
	}
	if os.Getenv("FLEET_CPU_FLEET") != "off" {
		hc := DefaultHostConfig()
		hc.Brokers, hc.VerdictPublicKey = []string{addr}, os.Getenv("FLEET_CPU_PUB")
		if d, err := time.ParseDuration(os.Getenv("FLEET_CPU_FETCH_WAIT")); err == nil {
			hc.FetchWait = d
		}
		h, err := NewHost(hc, &stamps{got: map[string]time.Time{}}, quietLog(), &metrics.Registry{})
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		<-h.ready
		ev := &audit.Event{}
		ev.Hashes = []audit.FileHash{{Path: "/opt/x", Algo: "sha256", Hex: hashN(1)}}
		_ = h.Enrich(context.Background(), ev) // one pending hash, as a host has
	}
	fmt.Println("ready")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
}

// BenchmarkHostFollowCPU measures the CPU a host spends following the
// verdicts topic: a child process (TestHostProcess) runs a Host against
// the kfake broker of this process for 10 s per op, while this process
// produces signed verdicts at the given rate (0: an idle topic), and
// cpu_%core is the child's user+system CPU over that time as a share of
// one core. fleet=off is the same child without a Host (the idle test
// binary). The topic holds 1,000 verdicts before the host starts.
// FLEET_CPU_SECONDS sets the time per case, FLEET_CPU_FETCH_WAIT the
// host's fetch_wait.
//
//	go test -run '^$' -bench HostFollowCPU -benchtime 1x ./enrich/fleet/
func BenchmarkHostFollowCPU(b *testing.B) {
	for _, c := range []struct {
		fleet string
		rate  int
	}{{"off", 0}, {"on", 0}, {"on", 10}, {"on", 100}} {
		b.Run(fmt.Sprintf("fleet=%s/verdicts=%d/s", c.fleet, c.rate), func(b *testing.B) {
			for range b.N {
				b.ReportMetric(hostFollowCPU(b, c.fleet, c.rate, followSeconds()), "cpu_%core")
			}
		})
	}
}

func hostFollowCPU(b *testing.B, fleet string, rate int, d time.Duration) float64 {
	w := newWorld(b)
	if _, err := EnsureTopics(w.serviceConfig(), quietLog()); err != nil {
		b.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(w.addr), kgo.DefaultProduceTopic(DefaultVerdictsTopic))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	v := Verdict{Status: VerdictNotFound, LookedUp: time.Now().Unix(), TTL: 86400, Source: SourceVirusTotal}
	n := 0
	verdict := func() *kgo.Record {
		n++
		k := hashN(1000000 + n)
		return &kgo.Record{Key: []byte(k), Value: EncodeVerdict(k, v, w.priv)}
	}
	var recs []*kgo.Record
	for range 1000 {
		recs = append(recs, verdict())
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		b.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestHostProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "FLEET_CPU_BROKER="+w.addr, "FLEET_CPU_FLEET="+fleet,
		"FLEET_CPU_PUB="+base64.StdEncoding.EncodeToString(w.pub))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = stdin.Close(); _ = cmd.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		b.Fatalf("host process: %q %v", line, err)
	}
	time.Sleep(time.Second) // past the start
	cpu0, t0 := procCPU(b, cmd.Process.Pid), time.Now()
	var tick <-chan time.Time
	if rate > 0 {
		tk := time.NewTicker(time.Second / time.Duration(rate))
		defer tk.Stop()
		tick = tk.C
	}
	end := time.After(d)
	for done := false; !done; {
		select {
		case <-tick:
			cl.Produce(ctx, verdict(), nil)
		case <-end:
			done = true
		}
	}
	cpu1, t1 := procCPU(b, cmd.Process.Pid), time.Now()
	return 100 * (cpu1 - cpu0).Seconds() / t1.Sub(t0).Seconds()
}

// procCPU returns the user+system CPU time of process pid
// (/proc/pid/stat fields 14 and 15, in clock ticks of 1/100 s).
func procCPU(b *testing.B, pid int) time.Duration {
	buf, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(buf[strings.LastIndexByte(string(buf), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// followSeconds is how long BenchmarkHostFollowCPU measures each case:
// 10 s, or FLEET_CPU_SECONDS.
func followSeconds() time.Duration {
	if n, err := strconv.Atoi(os.Getenv("FLEET_CPU_SECONDS")); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	return 10 * time.Second
}
