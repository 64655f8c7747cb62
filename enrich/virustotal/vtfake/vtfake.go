// Package vtfake is a local fake of the VirusTotal v3 files endpoint
// (GET /api/v3/files/{hash}) for tests, written from the documented
// shapes. It checks X-Apikey like the real API (a missing header is 401
// AuthenticationRequiredError, a wrong key 401 WrongCredentialsError),
// answers unknown hashes with 404 NotFoundError and records every request,
// so tests can count what reached "VirusTotal".
package vtfake

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Reply is one answer of the fake API.
type Reply struct {
	Status      int
	Body        string
	ContentType string        // default application/json
	Delay       time.Duration // answer late (the request context still cancels)
	Hijack      bool          // drop the connection without answering
}

// APIError is an API error answer.
func APIError(status int, code, msg string) Reply {
	return Reply{Status: status, Body: fmt.Sprintf(`{"error": {"code": %q, "message": %q}}`, code, msg)}
}

// FileReply is a 200 answer with a file object for sha with the given
// number of malicious detections (and 1 harmless, 60 undetected).
func FileReply(sha string, malicious int64) Reply {
	return Reply{Status: 200, Body: fmt.Sprintf(`{"data": {"id": %q, "type": "file", "links": {"self": "x"},
		"attributes": {"meaningful_name": "f-%s", "reputation": %d, "first_submission_date": 1600000000,
		"last_analysis_date": 1700000000, "last_analysis_stats": {"harmless": 1, "malicious": %d,
		"suspicious": 0, "undetected": 60, "type-unsupported": 3, "failure": 0}}}}`, sha, sha[:min(8, len(sha))], -malicious, malicious)}
}

// Server is the fake, served over HTTP on loopback until the test ends.
// Its methods are safe for concurrent use.
type Server struct {
	srv *httptest.Server

	mu      sync.Mutex
	key     string
	files   map[string]Reply   // steady answers by hash
	script  map[string][]Reply // answers consumed first, in order
	all     *Reply             // when set, the answer to every request
	reqs    []string           // hashes requested, in order
	uris    []string           // request URIs
	apikeys []string           // X-Apikey values received
	hit     chan string        // gets each requested hash (buffered, never blocks)
}

// New starts a fake that accepts key; it stops when t ends.
func New(t testing.TB, key string) *Server {
	f := &Server{key: key, files: map[string]Reply{}, script: map[string][]Reply{}, hit: make(chan string, 1000)}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// URL is the base URL to set as the client's host.
func (f *Server) URL() string { return f.srv.URL }

func (f *Server) serve(w http.ResponseWriter, r *http.Request) {
	hash, ok := strings.CutPrefix(r.URL.Path, "/api/v3/files/")
	f.mu.Lock()
	f.reqs = append(f.reqs, hash)
	f.uris = append(f.uris, r.URL.RequestURI())
	f.apikeys = append(f.apikeys, r.Header.Get("X-Apikey"))
	var rep Reply
	switch {
	case !ok || r.Method != http.MethodGet:
		rep = APIError(400, "BadRequestError", "bad path")
	case r.Header.Get("X-Apikey") == "":
		rep = APIError(401, "AuthenticationRequiredError", "X-Apikey header is missing")
	case r.Header.Get("X-Apikey") != f.key:
		rep = APIError(401, "WrongCredentialsError", "Wrong API key")
	case f.all != nil:
		rep = *f.all
	case len(f.script[hash]) > 0:
		rep = f.script[hash][0]
		f.script[hash] = f.script[hash][1:]
	default:
		var found bool
		if rep, found = f.files[hash]; !found {
			rep = APIError(404, "NotFoundError", fmt.Sprintf("File %q not found", hash))
		}
	}
	f.mu.Unlock()
	select {
	case f.hit <- hash:
	default:
	}
	if rep.Delay > 0 {
		select {
		case <-time.After(rep.Delay):
		case <-r.Context().Done():
			return
		}
	}
	if rep.Hijack {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	}
	ct := rep.ContentType
	if ct == "" {
		ct = "application/json"
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(rep.Status)
	if rep.Body != "" {
		fmt.Fprint(w, rep.Body)
	}
}

// SetKey changes the key the fake accepts.
func (f *Server) SetKey(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.key = key
}

// Set makes r the steady answer for hash.
func (f *Server) Set(hash string, r Reply) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.files[hash] = r
}

// Queue adds answers for hash that are used, in order, before the steady one.
func (f *Server) Queue(hash string, rs ...Reply) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.script[hash] = append(f.script[hash], rs...)
}

// SetAll makes r the answer to every request (nil: back to per-hash answers).
func (f *Server) SetAll(r *Reply) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.all = r
}

// Requests returns the hashes requested so far, in order.
func (f *Server) Requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.reqs...)
}

// URIs returns the request URIs received so far.
func (f *Server) URIs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.uris...)
}

// APIKeys returns the X-Apikey values received so far.
func (f *Server) APIKeys() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.apikeys...)
}

// Hit receives each requested hash (buffered; hashes past the buffer are
// not sent, Requests still has them).
func (f *Server) Hit() <-chan string { return f.hit }

// WaitRequests waits up to 5s until the fake has seen n requests and
// returns them; it fails t otherwise.
func (f *Server) WaitRequests(t testing.TB, n int) []string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if r := f.Requests(); len(r) >= n {
			return r
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("fake VirusTotal saw %d requests, want %d", len(f.Requests()), n)
	return nil
}
