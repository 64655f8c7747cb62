package plugin

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/audisp-enrich/audisp-enrich/conf"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
	"github.com/audisp-enrich/audisp-enrich/plugin/perf"
)

// BenchmarkReplayGELF replays the corpus (AUDISP_ENRICH_CORPUS, else the
// bundled capture) through the enriched pipeline into a GELF sink over
// UDP (ecs profile, gzip, disk buffer) and counts the messages at a local
// receiver. GELF_BENCH_BUFFER (disk, memory) and GELF_BENCH_COMPRESSION
// (gzip, zlib, none) change the buffer and the compression. One op is the
// whole corpus; events/s is what the receiver got divided by the time
// from the start of the replay to the last datagram.
func BenchmarkReplayGELF(b *testing.B) {
	path := os.Getenv("AUDISP_ENRICH_CORPUS")
	if path == "" {
		path = filepath.Join("testdata", "capture.log")
	}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	// A large receive buffer (SO_RCVBUFFORCE needs root; else the
	// rmem_max cap applies and the receiver may drop datagrams).
	_ = conn.SetReadBuffer(64 << 20)
	if rc, err := conn.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, 64<<20)
		})
	}
	var got, last atomic.Int64
	go func() {
		// recvmmsg(2), 64 datagrams a call: a cheap receiver, since it
		// shares the CPU with the pipeline under test.
		pc := ipv4.NewPacketConn(conn)
		ms := make([]ipv4.Message, 64)
		for i := range ms {
			ms[i].Buffers = [][]byte{make([]byte, 65536)}
		}
		for {
			n, err := pc.ReadBatch(ms, 0)
			if err != nil {
				return
			}
			for _, m := range ms[:n] {
				// A whole message, or the last chunk of a chunked one.
				if buf := m.Buffers[0][:m.N]; len(buf) < 12 || buf[0] != 0x1e || buf[1] != 0x0f || buf[10] == buf[11]-1 {
					got.Add(1)
				}
			}
			last.Store(time.Now().UnixNano())
		}
	}()
	dir := b.TempDir()
	bufType := os.Getenv("GELF_BENCH_BUFFER")
	if bufType == "" {
		bufType = "disk"
	}
	compression := os.Getenv("GELF_BENCH_COMPRESSION")
	if compression == "" {
		compression = "gzip"
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
compression = %q
[sink.buffer]
type = %q
`, dir, conn.LocalAddr().String(), compression, bufType)))
	if err != nil {
		b.Fatal(err)
	}
	sent := metrics.Default.Counter("audisp_enrich_gelf_messages_sent_total", metrics.Label("sink", "gelf-bench"), "")
	var events, lost int64
	var busy, cpu time.Duration
	for b.Loop() {
		cpu0, err := perf.ProcCPU(os.Getpid())
		if err != nil {
			b.Fatal(err)
		}
		got.Store(0)
		sent0 := sent.Value()
		start := time.Now()
		if err := Replay(context.Background(), cfg, slog.New(slog.DiscardHandler), []string{path}, ReplayOptions{}); err != nil {
			b.Fatal(err)
		}
		for n := int64(-1); n != got.Load(); time.Sleep(100 * time.Millisecond) {
			n = got.Load()
		}
		events += got.Load()
		lost += int64(sent.Value()-sent0) - got.Load()
		busy += time.Unix(0, last.Load()).Sub(start)
		cpu1, _ := perf.ProcCPU(os.Getpid())
		cpu += cpu1 - cpu0
	}
	b.ReportMetric(float64(events)/busy.Seconds(), "events/s")
	b.ReportMetric(float64(events)/float64(b.N), "events/op")
	b.ReportMetric(float64(lost)/float64(b.N), "lost/op")
	// CPU of the whole process (replay, sink, receiver) per event: what
	// the load of other processes inflates least.
	b.ReportMetric(float64(cpu.Microseconds())/float64(events), "cpu-µs/event")
}
