package blocklist

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/enrich/hashes"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
)

func testLogger() (*slog.Logger, *testsupport.SyncBuffer) {
	var b testsupport.SyncBuffer
	return slog.New(slog.NewTextHandler(&b, nil)), &b
}

var discard = slog.New(slog.DiscardHandler)

func metric(name, list, kind string) float64 {
	return metrics.Default.Snapshot()[name+`{list="`+list+`",kind="`+kind+`"}`]
}

func eventWith(hashes ...audit.FileHash) *audit.Event {
	return &audit.Event{Enrichment: audit.Enrichment{Hashes: hashes}}
}

func TestEnrichBlockAndAllow(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ReloadInterval = 0
	cfg.Lists = []ListConfig{
		{Name: "ours", Path: "testdata/plain.txt"},
		{Name: "bazaar", Path: "testdata/malwarebazaar.csv", Format: FormatMalwareBazaar, Kind: KindBlock},
		{Name: "nsrl", Path: "testdata/nsrl.csv", Kind: KindAllow, Format: FormatCSV, Column: "SHA-1", LabelColumn: "FileName", Header: true},
		{Name: "known", Path: "testdata/sha256sum.txt", Kind: KindAllow},
	}
	log, _ := testLogger()
	e, err := New(cfg, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()

	ev := eventWith(
		audit.FileHash{Path: "/tmp/eicar", Algo: "sha256", Hex: eicarSHA256},
		audit.FileHash{Path: "/tmp/eicar2", Algo: "sha256", Hex: eicarSHA256}, // same digest, another path
		audit.FileHash{Path: "/bin/ls", Algo: "sha1", Hex: eSHA1},
		audit.FileHash{Path: "/usr/local/bin/implant", Algo: "sha256", Hex: bSHA256},
		audit.FileHash{Path: "/x", Algo: "sha384", Hex: strings.Repeat("ab", 48)},
		audit.FileHash{Path: "/y", Algo: "sha256", Hex: gSHA256}, // in no list
		audit.FileHash{Path: "/z", Algo: "md5", Hex: aSHA1},      // inconsistent: ignored
	)
	ev.Tags = []string{"T1059"}
	if err := e.Enrich(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	wantBlock := []audit.ListHit{
		{List: "ours", Label: "EICAR test file", Hash: eicarSHA256},
		{List: "bazaar", Label: "Mirai", Hash: eicarSHA256},
		{List: "bazaar", Label: "", Hash: bSHA256},
	}
	wantAllow := []audit.ListHit{
		{List: "nsrl", Label: "ls", Hash: eSHA1},
		{List: "known", Label: "/usr/local/bin/implant", Hash: bSHA256},
	}
	if !reflect.DeepEqual(ev.Blocklist, wantBlock) {
		t.Errorf("Blocklist = %+v\nwant %+v", ev.Blocklist, wantBlock)
	}
	if !reflect.DeepEqual(ev.Allowlisted, wantAllow) {
		t.Errorf("Allowlisted = %+v\nwant %+v", ev.Allowlisted, wantAllow)
	}
	if want := []string{"T1059", "blocklist:ours", "blocklist:bazaar"}; !reflect.DeepEqual(ev.Tags, want) {
		t.Errorf("Tags = %q, want %q", ev.Tags, want)
	}
	if ev.Severity != SeverityHit {
		t.Errorf("Severity = %d, want %d", ev.Severity, SeverityHit)
	}
	if got := metric(mHits, "bazaar", "block"); got != 3 {
		t.Errorf("hits{bazaar} = %v, want 3 (two events hashes with the EICAR digest, one other)", got)
	}
	if got := metric(mEntries, "bazaar", "block"); got != 7 {
		t.Errorf("entries{bazaar} = %v, want 7", got)
	}

	// Allow-only hits change neither tags nor severity; a higher severity stays.
	ev = eventWith(audit.FileHash{Algo: "sha1", Hex: fSHA1})
	ev.Severity = 4
	if err := e.Enrich(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if len(ev.Blocklist) != 0 || len(ev.Tags) != 0 || ev.Severity != 4 ||
		!reflect.DeepEqual(ev.Allowlisted, []audit.ListHit{{List: "nsrl", Label: "bash, the shell", Hash: fSHA1}}) {
		t.Errorf("allow-only event: %+v", ev.Enrichment)
	}
}

// TestPrefixIsNotAHit: a digest that shares its first 8 bytes (or all but
// its last digit) with a listed one is on no list, allow or block (found
// by review: the lists compared 8-byte prefixes, so a crafted file passed
// for an allow-listed one).
func TestPrefixIsNotAHit(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ReloadInterval = 0
	cfg.Lists = []ListConfig{
		{Name: "ours", Path: "testdata/plain.txt"},
		{Name: "known", Path: "testdata/sha256sum.txt", Kind: KindAllow},
	}
	log, _ := testLogger()
	e, err := New(cfg, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for _, listed := range []string{eicarSHA256, bSHA256} { // on ours, on known
		last := "0"
		if listed[63] == '0' {
			last = "1"
		}
		for _, h := range []string{listed[:16] + strings.Repeat("0", 48), listed[:63] + last} {
			ev := eventWith(audit.FileHash{Path: "/tmp/evil", Algo: "sha256", Hex: h})
			if err := e.Enrich(context.Background(), ev); err != nil {
				t.Fatal(err)
			}
			if len(ev.Blocklist) != 0 || len(ev.Allowlisted) != 0 {
				t.Errorf("%s (a prefix of %s) hit: block %+v allow %+v", h, listed, ev.Blocklist, ev.Allowlisted)
			}
		}
		ev := eventWith(audit.FileHash{Path: "/tmp/x", Algo: "sha256", Hex: listed})
		if err := e.Enrich(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
		if len(ev.Blocklist)+len(ev.Allowlisted) == 0 {
			t.Errorf("%s itself is on no list", listed)
		}
	}
}

func TestDisabledAndEmpty(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Enabled = false
	cfg.Lists = []ListConfig{{Name: "missing", Path: "/nonexistent/list"}}
	e, err := New(cfg, discard, nil)
	if err != nil {
		t.Fatalf("disabled enricher must not load lists: %v", err)
	}
	ev := eventWith(audit.FileHash{Algo: "sha256", Hex: eicarSHA256})
	if err := e.Enrich(context.Background(), ev); err != nil || len(ev.Blocklist) != 0 {
		t.Errorf("disabled: err %v hits %v", err, ev.Blocklist)
	}
	if err := e.Reload(); err != nil {
		t.Error(err)
	}
	e.Close()
	e.Close()
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.txt")
	if err := os.WriteFile(bad, []byte(aMD5+"\n\nnot-a-hash\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Lists = []ListConfig{
		{Name: "bad", Path: bad},
		{Name: "ok", Path: "testdata/plain.txt"},
		{Name: "missing", Path: filepath.Join(dir, "missing.txt")},
	}
	_, err := New(cfg, discard, nil)
	if err == nil {
		t.Fatal("New with a broken and a missing list succeeded")
	}
	var le *LineError
	if !errors.As(err, &le) || le.Line != 3 {
		t.Errorf("error %v does not carry the LineError of line 3", err)
	}
	for _, s := range []string{`blocklist "bad": ` + bad + `:3: `, `blocklist "missing": `, "no such file"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err, s)
		}
	}
	if strings.Contains(err.Error(), `"ok"`) {
		t.Errorf("error %q mentions the good list", err)
	}
	if _, ok := metrics.Default.Snapshot()[mEntries+`{list="ok",kind="block"}`]; ok {
		t.Error("a failed New left its metrics registered")
	}
}

// writeAtomic replaces path by rename, as list updaters should.
func writeAtomic(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func blocked(t *testing.T, e *Enricher, algo, hex string) []audit.ListHit {
	t.Helper()
	ev := eventWith(audit.FileHash{Algo: algo, Hex: hex})
	if err := e.Enrich(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	return ev.Blocklist
}

func TestReloadOnChange(t *testing.T) {
	path := filepath.Join(t.TempDir(), "list.txt")
	writeAtomic(t, path, aSHA256+" first\n")
	cfg := DefaultConfig()
	cfg.ReloadInterval = 10 * time.Millisecond
	cfg.Lists = []ListConfig{{Name: "poll", Path: path}}
	log, logs := testLogger()
	e, err := New(cfg, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if hits := blocked(t, e, "sha256", aSHA256); len(hits) != 1 || hits[0].Label != "first" {
		t.Fatalf("initial hits %+v", hits)
	}

	// A changed file is picked up by the poller.
	writeAtomic(t, path, aSHA256+" second\n"+bMD5+" new\n")
	testsupport.WaitFor(t, 5*time.Second, "the new md5 entry", func() bool { return len(blocked(t, e, "md5", bMD5)) == 1 })
	if hits := blocked(t, e, "sha256", aSHA256); len(hits) != 1 || hits[0].Label != "second" {
		t.Errorf("after reload: %+v", hits)
	}
	loads := metric(mLoads, "poll", "block")

	// A broken file keeps the previous index, logs file:line once, counts.
	errs := metric(mLoadErrors, "poll", "block")
	writeAtomic(t, path, cSHA256+" third\nthis is not a digest\n")
	testsupport.WaitFor(t, 5*time.Second, "a load error", func() bool { return metric(mLoadErrors, "poll", "block") > errs })
	time.Sleep(50 * time.Millisecond) // several more polls of the same broken file
	if got := metric(mLoadErrors, "poll", "block") - errs; got != 1 {
		t.Errorf("load errors grew by %v for one broken file, want 1", got)
	}
	if n := strings.Count(logs.String(), path+":2: "); n != 1 {
		t.Errorf("log names %s:2 %d times, want once:\n%s", path, n, logs)
	}
	if len(blocked(t, e, "md5", bMD5)) != 1 || len(blocked(t, e, "sha256", cSHA256)) != 0 {
		t.Error("the broken file replaced the previous index")
	}

	// Fixed in place (same inode, new size and mtime): reloaded.
	if err := os.WriteFile(path, []byte(cSHA256+" fixed\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	testsupport.WaitFor(t, 5*time.Second, "the fixed file", func() bool { return len(blocked(t, e, "sha256", cSHA256)) == 1 })
	if len(blocked(t, e, "md5", bMD5)) != 0 {
		t.Error("entries of the old file survived the reload")
	}
	// The poller may also have caught the truncated file (a valid, empty
	// list). load counts after the swap, so wait for the count too.
	testsupport.WaitFor(t, 5*time.Second, fmt.Sprintf("loads to reach %v", loads+1), func() bool { return metric(mLoads, "poll", "block") >= loads+1 })

	// A deleted file keeps the index; the poller logs it once. The count is
	// taken before the removal: the poller may see it at once.
	errs = metric(mLoadErrors, "poll", "block")
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	testsupport.WaitFor(t, 5*time.Second, "the missing-file error", func() bool { return metric(mLoadErrors, "poll", "block") > errs })
	time.Sleep(50 * time.Millisecond)
	if got := metric(mLoadErrors, "poll", "block") - errs; got != 1 {
		t.Errorf("missing file counted %v times, want 1", got)
	}
	if len(blocked(t, e, "sha256", cSHA256)) != 1 {
		t.Error("a deleted file dropped the index")
	}
	writeAtomic(t, path, dSHA256+"\n")
	testsupport.WaitFor(t, 5*time.Second, "the restored file", func() bool { return len(blocked(t, e, "sha256", dSHA256)) == 1 })
}

func TestReloadExplicitAndClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "list.csv")
	writeAtomic(t, path, "md5,family\n"+aMD5+",one\n")
	cfg := DefaultConfig()
	cfg.ReloadInterval = 10 * time.Millisecond
	cfg.Lists = []ListConfig{
		{Name: "sighup", Path: path, Format: FormatCSV, Column: "md5", LabelColumn: "family", Header: true},
		{Name: "static", Path: "testdata/bazaar_sha256.txt"},
	}
	e, err := New(cfg, discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	// After Close the poller is gone; Reload still works.
	e.Close()
	writeAtomic(t, path, "md5,family\n"+bMD5+",two\n")
	time.Sleep(60 * time.Millisecond)
	if len(blocked(t, e, "md5", aMD5)) != 1 || len(blocked(t, e, "md5", bMD5)) != 0 {
		t.Fatal("the file was reloaded after Close")
	}
	if err := e.Reload(); err != nil {
		t.Fatal(err)
	}
	if hits := blocked(t, e, "md5", bMD5); len(hits) != 1 || hits[0].Label != "two" {
		t.Fatalf("after Reload: %+v", hits)
	}

	writeAtomic(t, path, "md5,family\n"+cSHA256[:31]+",three\n")
	err = e.Reload()
	var le *LineError
	if !errors.As(err, &le) || le.File != path || le.Line != 2 {
		t.Fatalf("Reload of a broken file: %v, want a LineError at %s:2", err, path)
	}
	if len(blocked(t, e, "md5", bMD5)) != 1 || len(blocked(t, e, "sha256", eSHA256)) != 1 {
		t.Error("a failed Reload changed an index")
	}
}

// TestEnrichDuringReload runs lookups while indexes are swapped; run it with
// -race.
func TestEnrichDuringReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "list.txt")
	writeAtomic(t, path, aSHA256+"\n")
	cfg := DefaultConfig()
	cfg.ReloadInterval = time.Millisecond
	cfg.Lists = []ListConfig{{Name: "race", Path: path}}
	e, err := New(cfg, slog.New(slog.NewTextHandler(&testsupport.SyncBuffer{}, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if hits := blocked(t, e, "sha256", aSHA256); len(hits) != 1 {
					t.Errorf("lookup during reload: %+v", hits)
					return
				}
			}
		})
	}
	for i := range 20 {
		content := aSHA256 + "\n" + strings.Repeat(bSHA256+"\n", i)
		writeAtomic(t, path, content)
		if err := e.Reload(); err != nil {
			t.Error(err)
		}
	}
	close(stop)
	wg.Wait()
}

func TestValidate(t *testing.T) {
	ok := ListConfig{Name: "a", Path: "/x"}
	tests := []struct {
		name  string
		mod   func(c *Config)
		error string
	}{
		{"defaults", func(c *Config) {}, ""},
		{"lists", func(c *Config) {
			c.Lists = []ListConfig{ok, {Name: "b.c:d-e_f", Path: "/y", Kind: KindAllow, Format: FormatThreatFox},
				{Name: "csv", Path: "/z", Format: FormatCSV, Column: "sha256", LabelColumn: "3", Delimiter: ";", Comment: "%", Header: true}}
		}, ""},
		{"negative interval", func(c *Config) { c.ReloadInterval = -time.Second }, "negative"},
		{"no name", func(c *Config) { c.Lists = []ListConfig{{Path: "/x"}} }, "name is required"},
		{"bad name", func(c *Config) { c.Lists = []ListConfig{{Name: `a"b`, Path: "/x"}} }, "letters, digits"},
		{"duplicate", func(c *Config) { c.Lists = []ListConfig{ok, ok} }, `duplicate name "a"`},
		{"no path", func(c *Config) { c.Lists = []ListConfig{{Name: "a"}} }, "path is required"},
		{"kind", func(c *Config) { c.Lists = []ListConfig{{Name: "a", Path: "/x", Kind: "deny"}} }, `kind "deny"`},
		{"format", func(c *Config) { c.Lists = []ListConfig{{Name: "a", Path: "/x", Format: "json"}} }, `format "json"`},
		{"csv option on plain", func(c *Config) { c.Lists = []ListConfig{{Name: "a", Path: "/x", Column: "1"}} }, "apply only to format"},
		{"csv without column", func(c *Config) { c.Lists = []ListConfig{{Name: "a", Path: "/x", Format: FormatCSV}} }, "needs column"},
		{"column zero", func(c *Config) { c.Lists = []ListConfig{{Name: "a", Path: "/x", Format: FormatCSV, Column: "0"}} }, "start at 1"},
		{"name without header", func(c *Config) {
			c.Lists = []ListConfig{{Name: "a", Path: "/x", Format: FormatCSV, Column: "1", LabelColumn: "family"}}
		}, "needs header = true"},
		{"long delimiter", func(c *Config) {
			c.Lists = []ListConfig{{Name: "a", Path: "/x", Format: FormatCSV, Column: "1", Delimiter: ", "}}
		}, "delimiter"},
		{"quote comment", func(c *Config) {
			c.Lists = []ListConfig{{Name: "a", Path: "/x", Format: FormatCSV, Column: "1", Comment: `"`}}
		}, "comment"},
		{"same delimiter and comment", func(c *Config) {
			c.Lists = []ListConfig{{Name: "a", Path: "/x", Format: FormatCSV, Column: "1", Delimiter: "#"}}
		}, "must differ"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.mod(&c)
			err := c.Validate()
			if tt.error == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.error) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.error)
			}
			if _, nerr := New(c, discard, nil); nerr == nil {
				t.Error("New accepted an invalid config")
			}
		})
	}
}

// TestAfterHashesEnricher runs the two enrichers in pipeline order on
// INTEGRITY_RULE records as the parser hands them over: every digest of
// Event.Hashes is looked up, whatever its spelling on the record.
func TestAfterHashesEnricher(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ReloadInterval = 0
	cfg.Lists = []ListConfig{
		{Name: "threatfox", Path: "testdata/threatfox.csv", Format: FormatThreatFox},
		{Name: "ours", Path: "testdata/plain.txt"},
	}
	bl, err := New(cfg, discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bl.Close()
	integrity := func(file, hash string) *audit.Record {
		return &audit.Record{Type: "INTEGRITY_RULE", TypeNum: audit.TypeIntegrityRule, NestedFrom: -1, Fields: []audit.Field{
			{Name: "file", Raw: `"` + file + `"`, Value: file, Enc: audit.Quoted},
			{Name: "hash", Raw: `"` + hash + `"`, Value: hash, Enc: audit.Quoted},
		}}
	}
	ev := &audit.Event{Records: []*audit.Record{
		integrity("/tmp/.x/mirai", "sha256:"+strings.ToUpper(aSHA256)),
		integrity("/usr/bin/true", "sha256:"+gSHA256),
		integrity("/usr/lib/old", aSHA1), // legacy bare SHA-1
		integrity("/tmp/short", "sha256:"+aSHA256[:62]),
		integrity("/usr/lib/upper", "SHA512:"+strings.ToUpper(aSHA512)),
	}}
	// The 62-digit value is not a digest: a warning, and not in Hashes.
	if err := hashes.New(nil).Enrich(context.Background(), ev); err == nil || !strings.Contains(err.Error(), "record 3") {
		t.Fatalf("hashes: %v, want an error for record 3", err)
	}
	if len(ev.Hashes) != 4 {
		t.Fatalf("Hashes = %+v, want the 4 digests", ev.Hashes)
	}
	if err := bl.Enrich(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	want := []audit.ListHit{
		{List: "threatfox", Label: "Mirai", Hash: aSHA256},
		{List: "ours", Label: "dropper stage 1", Hash: aSHA256},
		{List: "ours", Label: "Mirai", Hash: aSHA1},
		{List: "ours", Label: "Mirai", Hash: aSHA512},
	}
	if !reflect.DeepEqual(ev.Blocklist, want) {
		t.Errorf("Blocklist = %+v\nwant %+v", ev.Blocklist, want)
	}
	if !reflect.DeepEqual(ev.Tags, []string{"blocklist:threatfox", "blocklist:ours"}) || ev.Severity != SeverityHit {
		t.Errorf("tags %q severity %d", ev.Tags, ev.Severity)
	}
}
