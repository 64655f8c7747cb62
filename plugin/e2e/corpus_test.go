package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit/audittest"
	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
)

// inEvent is one audit event of the input: its id ("SEC.MSEC:SERIAL", the
// event id without the node) and its record lines, in input order.
type inEvent struct {
	id    string
	lines []string
}

var stampRE = regexp.MustCompile(`msg=audit\((\d+)\.(\d{3}):(\d+)\)`)

// capturePath is the bundled real-auditd capture (1791 records, 234 events).
func capturePath(t testing.TB) string {
	t.Helper()
	root, err := testsupport.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "plugin", "testdata", "capture.log")
}

// loadEvents reads an audit log and groups its records by event, ordered by
// the first record of each event.
func loadEvents(t testing.TB, path string) []inEvent {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var evs []inEvent
	index := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		m := stampRE.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("%s:%d: no msg=audit(...) stamp: %.100q", path, n, line)
		}
		id := m[1] + "." + m[2] + ":" + m[3]
		i, ok := index[id]
		if !ok {
			i = len(evs)
			index[id] = i
			evs = append(evs, inEvent{id: id})
		}
		evs[i].lines = append(evs[i].lines, line)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return evs
}

// replicate returns n copies of base with distinct ids: copy k has every
// serial raised by k·10000 and every time by k·3 s (the capture's serials
// are below 10000 and it spans under 3 s), so ids stay unique and time
// moves forward. Copy 0 is base itself.
func replicate(t testing.TB, base []inEvent, n int) []inEvent {
	t.Helper()
	out := make([]inEvent, 0, len(base)*n)
	for k := 0; k < n; k++ {
		for _, ev := range base {
			var ne inEvent
			for _, l := range ev.lines {
				nl := stampRE.ReplaceAllStringFunc(l, func(s string) string {
					m := stampRE.FindStringSubmatch(s)
					sec, _ := strconv.ParseInt(m[1], 10, 64)
					serial, _ := strconv.ParseInt(m[3], 10, 64)
					if serial >= 10000 {
						t.Fatalf("serial %d too large to replicate", serial)
					}
					return fmt.Sprintf("msg=audit(%d.%s:%d)", sec+int64(3*k), m[2], serial+int64(10000*k))
				})
				ne.lines = append(ne.lines, nl)
			}
			m := stampRE.FindStringSubmatch(ne.lines[0])
			ne.id = m[1] + "." + m[2] + ":" + m[3]
			out = append(out, ne)
		}
	}
	return out
}

func idsOf(evs []inEvent) []string {
	ids := make([]string, len(evs))
	for i, ev := range evs {
		ids[i] = ev.id
	}
	return ids
}

// received is what one destination got: how often each event id arrived,
// and the alert documents.
type received struct {
	count  map[string]int
	alerts []alertDoc
	// late counts documents flagged event.late: records that came after
	// their event was emitted (for example while when_full = "block" held
	// the reader up past the end-of-event timeout). They are not in count:
	// the rest of such an event is not a second copy of it.
	late int
}

type alertDoc struct {
	Sink   string `json:"sink"`
	Reason string `json:"reason"`
	Count  uint64 `json:"count"`
}

// parseDocs reads JSON documents, one per element, counts event ids and
// collects alerts. The id is taken without its node part:
// "NODE:SEC.MSEC:SERIAL" → "SEC.MSEC:SERIAL". Every validateEvery-th
// document (1: all, 0: none) and every document that is not of kind audit
// is validated against the event schema; validation costs about 2 ms a
// document, so the large runs validate a sample.
func parseDocs(t testing.TB, what string, docs [][]byte, validateEvery int) received {
	t.Helper()
	var sample [][]byte
	r := received{count: map[string]int{}}
	for i, d := range docs {
		if bytes.Contains(d, lateFlag) {
			r.late++
			continue
		}
		if id, ok := fastAuditID(d); ok {
			r.count[stripNode(id)]++
			if validateEvery > 0 && i%validateEvery == 0 {
				sample = append(sample, d)
			}
			continue
		}
		var doc struct {
			Kind  string `json:"kind"`
			Event struct {
				ID string `json:"id"`
			} `json:"event"`
			Alert *alertDoc `json:"alert"`
		}
		if err := json.Unmarshal(d, &doc); err != nil {
			t.Fatalf("%s: document %d is not JSON: %v: %.200q", what, i+1, err, d)
		}
		if validateEvery > 0 {
			sample = append(sample, d)
		}
		switch doc.Kind {
		case "audit":
			r.count[stripNode(doc.Event.ID)]++
		case "alert":
			if doc.Alert == nil {
				t.Fatalf("%s: alert document without alert: %.300s", what, d)
			}
			r.alerts = append(r.alerts, *doc.Alert)
		}
	}
	if len(sample) > 0 {
		audittest.ValidateJSONLines(t, bytes.Join(sample, []byte("\n")))
	}
	return r
}

// lateFlag is how the encoder marks a late document (a key: inside a JSON
// string the quotes would be escaped).
var lateFlag = []byte(`"late":true`)

// auditPrefix is how the encoder starts an audit document.
var auditPrefix = []byte(`{"schema_version":1,"kind":"audit",`)

// fastAuditID finds the event id of an audit document without decoding
// it all: the encoder writes kind first and event.id early, and ids hold
// no characters JSON escapes.
func fastAuditID(d []byte) (string, bool) {
	if !bytes.HasPrefix(d, auditPrefix) {
		return "", false
	}
	const key = `"event":{"id":"`
	i := bytes.Index(d, []byte(key))
	if i < 0 || i > 256 {
		return "", false
	}
	rest := d[i+len(key):]
	j := bytes.IndexAny(rest, `"\`)
	if j < 0 || rest[j] != '"' {
		return "", false
	}
	return string(rest[:j]), true
}

func stripNode(id string) string {
	i := strings.LastIndexByte(id, ':')
	if i < 0 {
		return id
	}
	j := strings.LastIndexByte(id[:i], ':')
	return id[j+1:]
}

// tally compares what arrived against the input ids.
type tally struct {
	input, unique, missing, dups, unexpected int
	missingIDs                               []string
}

func (t tally) String() string {
	return fmt.Sprintf("input %d events, %d arrived (unique), %d missing, %d duplicates, %d unexpected",
		t.input, t.unique, t.missing, t.dups, t.unexpected)
}

func count(want []string, got map[string]int) tally {
	r := tally{input: len(want)}
	in := make(map[string]bool, len(want))
	for _, id := range want {
		in[id] = true
		switch n := got[id]; {
		case n == 0:
			r.missing++
			if len(r.missingIDs) < 10 {
				r.missingIDs = append(r.missingIDs, id)
			}
		default:
			r.unique++
			r.dups += n - 1
		}
	}
	for id := range got {
		if !in[id] {
			r.unexpected++
		}
	}
	return r
}

// positions returns the input positions (indexes into want) of the ids
// that arrived, sorted.
func positions(want []string, got map[string]int) []int {
	var p []int
	for i, id := range want {
		if got[id] > 0 {
			p = append(p, i)
		}
	}
	sort.Ints(p)
	return p
}
