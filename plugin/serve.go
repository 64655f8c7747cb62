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
// other long-running commands (the fleet verdict service).
func ServeMetrics(listen string, log *slog.Logger) (net.Listener, error) {
	return serveMetrics(listen, log)
}

// serveMetrics exposes the registry as Prometheus text on listen
// ("HOST:PORT", loopback recommended, or "unix:PATH"). It returns the
// listener so the caller can close it.
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
