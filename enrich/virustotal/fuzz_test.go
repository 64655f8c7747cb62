package virustotal

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	vt "github.com/VirusTotal/vt-go"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

// FuzzFileObject feeds API answers to the verdict extraction the way vt-go
// decodes them: it must never panic, and the GUI link must always point at
// a valid sha256 or the looked-up hash.
func FuzzFileObject(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.json")
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"data":{"id":"x","type":"file","attributes":{"last_analysis_stats":{"malicious":"7"},"reputation":1e400}}}`))
	f.Add([]byte(`{"data":{"attributes":{"popular_threat_classification":[1,2],"meaningful_name":{"a":1}}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var resp vt.Response
		if json.Unmarshal(body, &resp) != nil || len(resp.Data) == 0 {
			return
		}
		obj := &vt.Object{}
		if json.Unmarshal(resp.Data, obj) != nil {
			return
		}
		c := verdictOf(obj, sha(1))
		link, ok := strings.CutPrefix(c.Link, guiFile)
		if !c.Found || !ok || (link != sha(1) && (len(link) != 64 || !validHex(link))) {
			t.Fatalf("verdict %+v", c)
		}
	})
}

// FuzzStoredBudget feeds damaged budget records (as vt.db could hold after
// a crash or an edit) to the budget arithmetic: no panic, and the next
// request time is never before now.
func FuzzStoredBudget(f *testing.F) {
	f.Add([]byte(`{"recent":[1,2,3],"day":20000,"day_n":5,"month":24310,"month_n":9,"paused_until":0,"strikes":1}`), 4, 500, 15500)
	f.Add([]byte(`{"recent":[9223372036854775807,-1,0],"day_n":-5,"strikes":-2}`), 1, 1, 1)
	f.Add([]byte(`{}`), 0, 0, 0)
	f.Fuzz(func(t *testing.T, rec []byte, perMin, perDay, perMonth int) {
		b := budget{perMin: abs(perMin) % 100, perDay: abs(perDay) % 1000, perMonth: abs(perMonth) % 100000}
		if json.Unmarshal(rec, &b) != nil {
			return
		}
		now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
		if next := b.next(now); next.Before(now) || next.After(nextMonth(now).Add(time.Minute)) {
			t.Fatalf("next %v: before now or past the month window", next)
		}
		b.charge(now)
		b.refund(now)
		b.quotaExceeded(now)
		b.overUntil(now)
		b.remaining(now)
	})
}

func abs(n int) int {
	if n < 0 {
		return -(n + 1)
	}
	return n
}

// FuzzPickHash checks the hash choice against a plain restatement: the
// result is always a valid lower-case digest of the algorithm it claims.
func FuzzPickHash(f *testing.F) {
	f.Add("sha256", eicar, "md5", "44D88612FEA8A8F36DE82E1278ABB02F")
	f.Add("sha1", strings.Repeat("\x10", 40), "SHA256", strings.Repeat("G", 64))
	f.Fuzz(func(t *testing.T, a1, h1, a2, h2 string) {
		fh, ok := pickHash([]audit.FileHash{{Algo: a1, Hex: h1}, {Algo: a2, Hex: h2}})
		if !ok {
			return
		}
		want := map[string]int{"md5": 32, "sha1": 40, "sha256": 64}[fh.Algo]
		if len(fh.Hex) != want || !validHex(fh.Hex) {
			t.Fatalf("picked %+v", fh)
		}
	})
}
