package testsupport

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

func TestFreePortAndListening(t *testing.T) {
	port := FreePort(t, "tcp")
	if Listening("tcp", port) {
		t.Fatalf("port %d listens before anyone listened", port)
	}
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatalf("FreePort gave %d, which cannot be bound: %v", port, err)
	}
	if !Listening("tcp", port) {
		t.Errorf("port %d listens but Listening says no", port)
	}
	l.Close()
	if Listening("tcp", port) {
		t.Errorf("port %d closed but Listening says yes", port)
	}

	uport := FreePort(t, "udp")
	c, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(uport))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !Listening("udp", uport) {
		t.Errorf("udp port %d bound but Listening says no", uport)
	}
}

func TestUntil(t *testing.T) {
	var n atomic.Int32
	if !Until(time.Second, func() bool { return n.Add(1) == 5 }) {
		t.Errorf("cond held at the 5th call, Until reported false after %d", n.Load())
	}
	start := time.Now()
	if Until(50*time.Millisecond, func() bool { return false }) {
		t.Error("Until reported a condition that never held")
	}
	if el := time.Since(start); el < 50*time.Millisecond || el > 2*time.Second {
		t.Errorf("Until(50ms) returned after %s", el)
	}
}

func TestSharedDirSkipsWhenAbsent(t *testing.T) {
	// The shared checkout is never called this: the subtest must skip.
	var skipped bool
	t.Run("absent", func(t *testing.T) {
		defer func() { skipped = t.Skipped() }()
		SharedDir(t, "no-such-dir-"+strconv.Itoa(os.Getpid()))
	})
	if !skipped {
		t.Error("SharedDir did not skip for a missing directory")
	}
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Errorf("ModuleRoot %s has no go.mod", root)
	}
}

func TestSyncBuffer(t *testing.T) {
	var b SyncBuffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 100 {
			b.Write([]byte("x"))
		}
	}()
	for range 100 {
		_ = b.String()
	}
	<-done
	if got := len(b.String()); got != 100 {
		t.Errorf("%d bytes, want 100", got)
	}
}
