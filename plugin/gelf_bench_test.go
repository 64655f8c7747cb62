package plugin

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/conf"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
	"github.com/audisp-enrich/audisp-enrich/plugin/perf"
	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
)

// BenchmarkReplayGELF replays the corpus (AUDISP_ENRICH_CORPUS, else the
// bundled capture) through the enriched pipeline into a GELF sink over
// UDP (ecs profile, the sink's default compression "auto", disk buffer)
// and counts the messages at a receiver in its own process
// (plugin/perf/gelfcount, GOMAXPROCS=1), which checks that every datagram
// is a whole GELF message or a chunk of one and counts a chunked message
// once all its chunks arrived. GELF_BENCH_BUFFER (disk, memory) and
// GELF_BENCH_COMPRESSION (auto, gzip, zlib, none) change the buffer and
// the compression.
//
// One op is the whole corpus. events/s is what the receiver counted
// divided by the time from the start of the replay to the last datagram;
// lost/op is what the sink counted as sent and the receiver did not get
// (a bad datagram or an incomplete message fails the benchmark);
// cpu-µs/event is the CPU of the benchmark's process (replay and sink),
// receiver-cpu-µs/event the receiver's.
func BenchmarkReplayGELF(b *testing.B) {
	path := os.Getenv("AUDISP_ENRICH_CORPUS")
	if path == "" {
		path = filepath.Join("testdata", "capture.log")
	}
	bin := filepath.Join(b.TempDir(), "gelfcount")
	if err := testsupport.GoBuild(bin, "./plugin/perf/gelfcount"); err != nil {
		b.Fatal(err)
	}
	rx := startGELFCount(b, bin)
	dir := b.TempDir()
	bufType := os.Getenv("GELF_BENCH_BUFFER")
	if bufType == "" {
		bufType = "disk"
	}
	compression := ""
	if c := os.Getenv("GELF_BENCH_COMPRESSION"); c != "" {
		compression = fmt.Sprintf("compression = %q\n", c)
	}
	cfg, err := conf.Parse("bench.toml", []byte(fmt.Sprintf(`state_dir = %q
[log]
syslog = false
[enrich.proc]
proc_fallback = false
[[sink]]
name = "gelf-bench"
type = "gelf"
profile = "ecs"
[sink.gelf]
address = %q
%s[sink.buffer]
type = %q
`, dir, rx.addr, compression, bufType)))
	if err != nil {
		b.Fatal(err)
	}
	sent := metrics.Default.Counter("audisp_enrich_gelf_messages_sent_total", metrics.Label("sink", "gelf-bench"), "")
	var events, lost int64
	var busy, cpu, rxCPU time.Duration
	for b.Loop() {
		cpu0, err := perf.ProcCPU(os.Getpid())
		if err != nil {
			b.Fatal(err)
		}
		rx0, err := perf.ProcCPU(rx.cmd.Process.Pid)
		if err != nil {
			b.Fatal(err)
		}
		n0 := rx.totals(b)
		sent0 := sent.Value()
		start := time.Now()
		if err := Replay(context.Background(), cfg, slog.New(slog.DiscardHandler), []string{path}, ReplayOptions{}); err != nil {
			b.Fatal(err)
		}
		cpu1, _ := perf.ProcCPU(os.Getpid())
		// The receiver is done when its count stops moving.
		var n1 gelfTotals
		for n := int64(-1); ; time.Sleep(100 * time.Millisecond) {
			if n1 = rx.totals(b); n1.messages == n {
				break
			}
			n = n1.messages
		}
		rx1, _ := perf.ProcCPU(rx.cmd.Process.Pid)
		if n1.bad != n0.bad || n1.incomplete != 0 {
			b.Fatalf("receiver: %d bad datagrams, %d incomplete messages", n1.bad-n0.bad, n1.incomplete)
		}
		got := n1.messages - n0.messages
		events += got
		lost += int64(sent.Value()-sent0) - got
		busy += time.Unix(0, n1.last).Sub(start)
		cpu += cpu1 - cpu0
		rxCPU += rx1 - rx0
	}
	b.ReportMetric(float64(events)/busy.Seconds(), "events/s")
	b.ReportMetric(float64(events)/float64(b.N), "events/op")
	b.ReportMetric(float64(lost)/float64(b.N), "lost/op")
	// Process CPU per event: what the load of other processes inflates least.
	b.ReportMetric(float64(cpu.Microseconds())/float64(events), "cpu-µs/event")
	b.ReportMetric(float64(rxCPU.Microseconds())/float64(events), "receiver-cpu-µs/event")
}

// gelfCount is a running plugin/perf/gelfcount.
type gelfCount struct {
	cmd  *exec.Cmd
	addr string
	in   io.Writer
	out  *bufio.Reader
}

type gelfTotals struct{ messages, bad, incomplete, last int64 }

func startGELFCount(b *testing.B, bin string) *gelfCount {
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
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
	b.Cleanup(func() {
		in.Close() // gelfcount exits at the end of stdin
		_ = cmd.Wait()
	})
	r := &gelfCount{cmd: cmd, in: in, out: bufio.NewReader(out)}
	line, err := r.out.ReadString('\n')
	if err != nil {
		b.Fatalf("gelfcount: %v", err)
	}
	r.addr = line[:len(line)-1]
	return r
}

// totals asks the receiver for its totals.
func (r *gelfCount) totals(b *testing.B) gelfTotals {
	if _, err := io.WriteString(r.in, "\n"); err != nil {
		b.Fatal(err)
	}
	line, err := r.out.ReadString('\n')
	if err != nil {
		b.Fatalf("gelfcount: %v", err)
	}
	var t gelfTotals
	if _, err := fmt.Sscanf(line, "messages=%d bad=%d incomplete=%d last=%d", &t.messages, &t.bad, &t.incomplete, &t.last); err != nil {
		b.Fatalf("gelfcount: %q: %v", line, err)
	}
	return t
}
