package buffer

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/sinks"
)

// TestDiskSurvivesKill9 runs a producer and an acking consumer on a disk
// buffer in a child process, kills it with SIGKILL at a random moment, and
// checks that every message whose Append had returned is either in the
// reopened spool or was acknowledged: kill -9 loses nothing that was
// appended (the data is in the page cache), it can only cause duplicates.
func TestDiskSurvivesKill9(t *testing.T) {
	if dir := os.Getenv("AE_BUFFER_KILL_DIR"); dir != "" {
		killHelper(dir)
		return
	}
	for trial := range 4 {
		dir := filepath.Join(t.TempDir(), "spool")
		cmd := exec.Command(os.Args[0], "-test.run=^TestDiskSurvivesKill9$")
		cmd.Env = append(os.Environ(), "AE_BUFFER_KILL_DIR="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		appended, acked := -1, map[int]bool{}
		lines := make(chan string, 1024)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		// The kill comes at a random moment once the child appended at
		// least 100 messages (its start can take long on a loaded host).
		var kill <-chan time.Time
		armed, giveUp := false, time.After(time.Minute)
	read:
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					break read
				}
				kind, n, _ := strings.Cut(l, " ")
				v, _ := strconv.Atoi(n)
				switch kind {
				case "A":
					appended = v
					if !armed && appended >= 100 {
						armed = true
						kill = time.After(time.Duration(rand.IntN(300)) * time.Millisecond)
					}
				case "K":
					acked[v] = true
				}
			case <-kill:
				cmd.Process.Signal(syscall.SIGKILL)
				kill = nil
			case <-giveUp:
				cmd.Process.Signal(syscall.SIGKILL)
				giveUp = nil
			}
		}
		cmd.Wait()
		if appended < 100 {
			t.Fatalf("trial %d: child appended only %d before the kill", trial, appended)
		}
		b, err := Open(Config{Type: TypeDisk, Dir: dir}, Options{Name: "kill"})
		if err != nil {
			t.Fatal(err)
		}
		present := map[int]bool{}
		for _, m := range readAll(t, b, true) {
			present[valueN(t, m)] = true
		}
		b.Close()
		for i := 0; i <= appended; i++ {
			if !present[i] && !acked[i] {
				t.Fatalf("trial %d: message %d was appended (last %d) but is neither in the spool nor acked", trial, i, appended)
			}
		}
		t.Logf("trial %d: %d appended, %d acked, %d in the spool after kill -9", trial, appended+1, len(acked), len(present))
	}
}

// killHelper appends and acks until killed, reporting progress on stdout
// only after each call returned.
func killHelper(dir string) {
	b, err := Open(Config{Type: TypeDisk, Dir: dir, FsyncInterval: 50 * time.Millisecond}, Options{Name: "kill"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	go func() {
		for {
			batch, err := b.ReadBatch(context.Background(), 7, 1<<20)
			if err != nil {
				return
			}
			time.Sleep(2 * time.Millisecond) // a slow sink, so a backlog builds
			if rand.IntN(3) == 0 {
				b.Nack(seqs(batch)...)
				continue
			}
			b.Ack(seqs(batch)...)
			var sb strings.Builder
			for _, m := range batch {
				var n int
				fmt.Sscanf(string(m.Value), `{"n":%d,`, &n)
				fmt.Fprintf(&sb, "K %d\n", n)
			}
			os.Stdout.WriteString(sb.String())
		}
	}()
	for i := 0; ; i += 10 {
		ms := make([]sinks.Message, 10)
		for j := range ms {
			ms[j] = msg(i + j)
		}
		if err := b.Append(ms...); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Fprintf(os.Stdout, "A %d\n", i+9)
		time.Sleep(100 * time.Microsecond)
	}
}
