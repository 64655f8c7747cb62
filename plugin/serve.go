package plugin

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
)

// ServeMetrics exposes metrics.Default like plugin mode does, for the
// other long-running commands (the fleet verdict service), with the same
// care for a unix socket's file (see serveMetrics).
func ServeMetrics(listen string, log *slog.Logger) (net.Listener, error) {
	return serveMetrics(listen, log)
}

// serveMetrics exposes the registry as Prometheus text on listen
// ("HOST:PORT", loopback recommended, or "unix:PATH"). It returns the
// listener so the caller can close it. A unix socket's file left by a
// process gone is removed first; the listener's Close removes the file
// only while it is still the one this listener made (see ownSocket).
func serveMetrics(listen string, log *slog.Logger) (net.Listener, error) {
	network, addr := "tcp", listen
	if p, ok := strings.CutPrefix(listen, "unix:"); ok {
		network, addr = "unix", p
		_ = os.Remove(p)
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listener %s: %w", listen, err)
	}
	if u, ok := ln.(*net.UnixListener); ok {
		ln = newOwnSocket(u)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_ = metrics.Default.WritePrometheus(w)
	})
	go func() {
		if err := http.Serve(ln, mux); err != nil && !strings.Contains(err.Error(), "closed") {
			log.Error("metrics listener stopped", "err", err)
		}
	}()
	return ln, nil
}

// ownSocket is a unix socket listener whose Close removes its socket file
// only while the file is still the one it made. A process started before
// this one finished its shutdown (auditd restarting the plugin, a new
// verdict service) has already replaced the file with its own
// (serveMetrics removes the old one), which must stay; Go's UnixListener
// would unlink it by its path.
type ownSocket struct {
	*net.UnixListener
	path string
	sock os.FileInfo // nil for an abstract socket: no file to remove
}

func newOwnSocket(u *net.UnixListener) *ownSocket {
	u.SetUnlinkOnClose(false)
	l := &ownSocket{UnixListener: u, path: u.Addr().String()}
	l.sock, _ = os.Stat(l.path)
	return l
}

// Close closes the listener, then removes its socket file if it is still
// its own.
func (l *ownSocket) Close() error {
	err := l.UnixListener.Close()
	if l.sock != nil {
		if fi, serr := os.Stat(l.path); serr == nil && os.SameFile(fi, l.sock) {
			_ = os.Remove(l.path)
		}
	}
	return err
}
