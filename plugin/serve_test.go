package plugin

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// TestServeMetricsKeepsReplacedSocket: closing a metrics listener on a
// unix socket removes the socket file only while it is still its own: a
// newer process (a verdict service or plugin started before the old one
// finished) that replaced the file keeps it, and its own close removes it.
func TestServeMetricsKeepsReplacedSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "metrics.sock")
	log := slog.New(slog.DiscardHandler)
	old, err := ServeMetrics("unix:"+path, log)
	if err != nil {
		t.Fatal(err)
	}
	newer, err := ServeMetrics("unix:"+path, log) // removes the old one's file, makes its own
	if err != nil {
		old.Close()
		t.Fatal(err)
	}
	mine, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if fi, err := os.Stat(path); err != nil || !os.SameFile(fi, mine) {
		t.Fatalf("closing the old listener removed the newer one's socket file: %v", err)
	}
	if _, err := getMetrics("unix:" + path); err != nil {
		t.Errorf("the newer listener no longer answers: %v", err)
	}
	newer.Close()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("the newer listener's own socket file stayed after its close: %v", err)
	}
}
