package virustotal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	vt "github.com/VirusTotal/vt-go"
)

// guiFile is the VirusTotal web page of a file; the link always points at
// the public GUI, whatever Config.Host says.
const guiFile = "https://www.virustotal.com/gui/file/"

// FileLink returns the VirusTotal web page of the file with this sha256
// (lower-case hex): the Link of a hit. The fleet host's cache rebuilds
// links with it instead of keeping them.
func FileLink(sha256 string) string { return guiFile + sha256 }

// transport ties vt-go's requests (which take no context) to the worker's
// context, so Close aborts a request in flight, and records the HTTP status
// of the last answer (vt-go drops it). The worker sends one request at a
// time, so one status slot is enough.
type transport struct {
	base   http.RoundTripper
	ctx    context.Context
	status atomic.Int32
}

func (t *transport) RoundTrip(r *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancel(r.Context())
	stop := context.AfterFunc(t.ctx, cancel)
	resp, err := t.base.RoundTrip(r.WithContext(ctx))
	if err != nil {
		stop()
		cancel()
		return nil, err
	}
	t.status.Store(int32(resp.StatusCode))
	resp.Body = &releaseBody{ReadCloser: resp.Body, release: func() { stop(); cancel() }}
	return resp, nil
}

// releaseBody releases the request's context when the body is closed.
type releaseBody struct {
	io.ReadCloser
	once    sync.Once
	release func()
}

func (b *releaseBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.release)
	return err
}

func newClient(key string, timeout time.Duration, ctx context.Context, base http.RoundTripper) (*vt.Client, *transport) {
	tr := &transport{base: base, ctx: ctx}
	c := vt.NewClient(key, vt.WithHTTPClient(&http.Client{Timeout: timeout, Transport: tr}))
	c.Agent = "audisp-enrich"
	return c, tr
}

// outcome classifies the result of one lookup.
type outcome string

const (
	outFound     outcome = "found"     // 200 with a file object
	outNotFound  outcome = "not_found" // 404 NotFoundError
	outQuota     outcome = "quota"     // 429: wait for the window to reset
	outAuth      outcome = "auth"      // 401/403: the key is bad; stop looking up
	outTransient outcome = "transient" // no answer, timeout, 5xx, garbled answer: retry later
	outError     outcome = "error"     // any other API error: give up on this hash
)

var outcomes = []outcome{outFound, outNotFound, outQuota, outAuth, outTransient, outError}

// classify maps a GetObject result to an outcome plus a short reason (the
// API error code, or "http_NNN", or "network"). status is the HTTP status
// of the answer, 0 when none arrived. vt-go returns vt.Error by value.
func classify(err error, status int) (outcome, string) {
	if err == nil {
		return outFound, ""
	}
	var ve vt.Error
	if errors.As(err, &ve) {
		switch ve.Code {
		case "NotFoundError":
			return outNotFound, ve.Code
		case "QuotaExceededError", "TooManyRequestsError":
			return outQuota, ve.Code
		case "WrongCredentialsError", "AuthenticationRequiredError", "ForbiddenError", "UserNotActiveError":
			return outAuth, ve.Code
		case "TransientError", "DeadlineExceededError":
			return outTransient, ve.Code
		}
		if o := byStatus(status); o != "" {
			return o, ve.Code
		}
		return outError, ve.Code
	}
	if status == 0 {
		return outTransient, "network"
	}
	if o := byStatus(status); o != "" {
		return o, "http_" + strconv.Itoa(status)
	}
	// A 2xx or 4xx answer vt-go could not parse (not JSON, no data).
	if status < 300 {
		return outTransient, "bad_response"
	}
	return outError, "http_" + strconv.Itoa(status)
}

// notSent reports whether a request failed before it reached VirusTotal
// (no connection could be made: the name did not resolve, the dial
// failed), so VirusTotal cannot have counted it against the quota.
func notSent(err error) bool {
	var dns *net.DNSError
	var op *net.OpError
	return errors.As(err, &dns) || errors.As(err, &op) && op.Op == "dial"
}

func byStatus(status int) outcome {
	switch {
	case status == http.StatusNotFound:
		return outNotFound
	case status == http.StatusTooManyRequests:
		return outQuota
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return outAuth
	case status >= 500:
		return outTransient
	}
	return ""
}

// verdictOf extracts the verdict fields of a file object. Missing
// attributes (popular_threat_classification is absent for clean files)
// leave zero values; unknown ones are ignored.
func verdictOf(obj *vt.Object, hash string) cacheEntry {
	num := func(a string) int64 { v, _ := obj.GetInt64(a); return v }
	str := func(a string) string { v, _ := obj.GetString(a); return v }
	sha := obj.ID()
	if len(sha) != 64 || !validHex(sha) {
		sha = str("sha256")
	}
	if len(sha) != 64 || !validHex(sha) {
		sha = hash
	}
	return cacheEntry{
		Found:           true,
		Malicious:       num("last_analysis_stats.malicious"),
		Suspicious:      num("last_analysis_stats.suspicious"),
		Harmless:        num("last_analysis_stats.harmless"),
		Undetected:      num("last_analysis_stats.undetected"),
		Reputation:      num("reputation"),
		ThreatLabel:     str("popular_threat_classification.suggested_threat_label"),
		MeaningfulName:  str("meaningful_name"),
		FirstSubmission: num("first_submission_date"),
		LastAnalysis:    num("last_analysis_date"),
		Link:            FileLink(sha),
	}
}

// validHex reports whether s is a lower-case hex md5, sha1 or sha256.
func validHex(s string) bool {
	switch len(s) {
	case 32, 40, 64:
	default:
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// answerTransport answers file lookups from Config.AnswersFile, in
// process: GET .../files/{sha256} gets 200 and the stored answer, or 404
// with a NotFoundError, as the API would send them.
type answerTransport map[string]json.RawMessage

// loadAnswers reads an answers file: a JSON object of SHA-256 -> answer.
func loadAnswers(path string) (answerTransport, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("virustotal: answers_file: %w", err)
	}
	var a answerTransport
	if err := json.Unmarshal(data, &a); err != nil {
		return nil, fmt.Errorf("virustotal: answers_file %s: %w", path, err)
	}
	for h := range a {
		if len(h) != 64 || strings.ToLower(h) != h {
			return nil, fmt.Errorf("virustotal: answers_file %s: key %q is not a lower-case SHA-256", path, h)
		}
	}
	return a, nil
}

func (a answerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	status, body := http.StatusNotFound, []byte(`{"error": {"code": "NotFoundError", "message": "not in answers_file"}}`)
	if b, ok := a[path.Base(r.URL.Path)]; ok && path.Base(path.Dir(r.URL.Path)) == "files" {
		status, body = http.StatusOK, b
	}
	return &http.Response{
		StatusCode: status, Status: http.StatusText(status), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:  http.Header{"Content-Type": []string{"application/json"}},
		Body:    io.NopCloser(bytes.NewReader(body)),
		Request: r, ContentLength: int64(len(body)),
	}, nil
}
