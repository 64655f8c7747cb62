package hashes

import (
	"context"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/enrich"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
	"github.com/audisp-enrich/audisp-enrich/sinks/encode"
)

// field builds a field the way the parser leaves it: quoted values lose their
// quotes, hex values are decoded.
func field(name, raw string) audit.Field {
	f := audit.Field{Name: name, Raw: raw, Value: raw}
	if len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"' {
		f.Enc = audit.Quoted
		f.Value = raw[1 : len(raw)-1]
	}
	return f
}

func hexField(name, raw, decoded string) audit.Field {
	return audit.Field{Name: name, Raw: raw, Value: decoded, Enc: audit.Hex}
}

// rec builds a record from "name=raw" words (raw values must not contain spaces).
func rec(typ, line string, extra ...audit.Field) *audit.Record {
	r := &audit.Record{Type: typ, TypeNum: audit.TypeNumber(typ), Line: "type=" + typ + " " + line, NestedFrom: -1}
	for _, w := range strings.Fields(line) {
		name, raw, _ := strings.Cut(w, "=")
		r.Fields = append(r.Fields, field(name, raw))
	}
	r.Fields = append(r.Fields, extra...)
	return r
}

// A record whose type is written as its number (type=1805, as Android's
// logcat writes the kernel's records; or UNKNOWN[1805]) is the numbered
// type: the enricher compared type names and took no hash from it.
func TestEnrichNumericType(t *testing.T) {
	const sha1Mount = "28cf7810e3b4d891dba68f0ccd4f30c5736f2c5c"
	for _, typ := range []string{"1805", "UNKNOWN[1805]"} {
		ev := &audit.Event{Records: []*audit.Record{
			rec(typ, `file="/usr/bin/mount" hash="`+sha1Mount+`" ppid=12301 pid=12417 comm="Fd-IMA.sh" exe="/usr/bin/bash"`),
		}}
		if err := New(nil).Enrich(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
		want := []audit.FileHash{{Path: "/usr/bin/mount", Algo: "sha1", Hex: sha1Mount}}
		if !reflect.DeepEqual(ev.Hashes, want) {
			t.Errorf("type=%s: Hashes = %+v, want %+v", typ, ev.Hashes, want)
		}
	}
}

func TestEnrichIntegrityRule(t *testing.T) {
	const (
		sha1Mount = "28cf7810e3b4d891dba68f0ccd4f30c5736f2c5c"
		sha256Dp  = "f8696a98c8ae7b0cccfd7051d3c3442e307160c605808afefe3e0c17fd244eb8"
		eicar     = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
	)
	ev := &audit.Event{Records: []*audit.Record{
		// Policy-load line: no file, no hash.
		rec("INTEGRITY_RULE", `action="audit" func="BPRM_CHECK" mask="MAY_EXEC" res=1`),
		// Legacy RHEL 7 line, bare SHA-1.
		rec("INTEGRITY_RULE", `file="/usr/bin/mount" hash="`+sha1Mount+`" ppid=12301 pid=12417 comm="Fd-IMA.sh" exe="/usr/bin/bash"`),
		rec("SYSCALL", `arch=c000003e syscall=59 success=yes exe="/usr/bin/dpkg"`),
		// Modern line, prefixed SHA-256.
		rec("INTEGRITY_RULE", `file="/var/lib/dpkg/tmp.ci/preinst" hash="sha256:`+sha256Dp+`" pid=1 comm="dpkg" exe="/usr/bin/dpkg"`),
		// A file name with a space: the kernel writes it as hex.
		rec("INTEGRITY_RULE", `hash="SHA256:`+strings.ToUpper(eicar)+`" pid=2`,
			hexField("file", "2F746D702F6120622E7368", "/tmp/a b.sh")),
		// The same triple again (two INTEGRITY_RULE lines can share a serial): kept once.
		rec("INTEGRITY_RULE", `file="/usr/bin/mount" hash="`+sha1Mount+`" pid=12418`),
		// Same digest, different path: kept.
		rec("INTEGRITY_RULE", `file="/usr/bin/umount" hash="sha1:`+sha1Mount+`"`),
	}}
	if err := New(nil).Enrich(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	want := []audit.FileHash{
		{Path: "/usr/bin/mount", Algo: "sha1", Hex: sha1Mount, Record: 1},
		{Path: "/var/lib/dpkg/tmp.ci/preinst", Algo: "sha256", Hex: sha256Dp, Record: 3},
		{Path: "/tmp/a b.sh", Algo: "sha256", Hex: eicar, Record: 4},
		{Path: "/usr/bin/umount", Algo: "sha1", Hex: sha1Mount, Record: 6},
	}
	if !reflect.DeepEqual(ev.Hashes, want) {
		t.Errorf("Hashes =\n%+v\nwant\n%+v", ev.Hashes, want)
	}
	if len(ev.Tags) != 0 || ev.Severity != 0 {
		t.Errorf("tags %v severity %d, want none", ev.Tags, ev.Severity)
	}
}

func TestEnrichInvalidHash(t *testing.T) {
	const good = "sha256:654897e5d6ff41bffac650f7f545975757380ae0bf1bb5459c0dc054cb342084"
	e := New(&metrics.Registry{})
	before := e.invalid.Value()
	ev := &audit.Event{Records: []*audit.Record{
		rec("INTEGRITY_RULE", `file="/bin/a" hash="sha256:abc"`),
		rec("INTEGRITY_RULE", `file="/bin/b" hash="`+good+`"`),
		rec("INTEGRITY_RULE", `file="/bin/c" hash="crc32:deadbeef"`),
	}}
	err := e.Enrich(context.Background(), ev)
	if err == nil {
		t.Fatal("want an error for the bad hash values")
	}
	msg := err.Error()
	for _, s := range []string{"record 0", `sha256:abc`, "record 2", "crc32:deadbeef"} {
		if !strings.Contains(msg, s) {
			t.Errorf("error %q does not mention %q", msg, s)
		}
	}
	if len(ev.Hashes) != 1 || ev.Hashes[0].Path != "/bin/b" || ev.Hashes[0].Record != 1 {
		t.Errorf("Hashes = %+v, want the one good record", ev.Hashes)
	}
	if got := e.invalid.Value() - before; got != 2 {
		t.Errorf("audisp_enrich_hashes_invalid_total grew by %d, want 2", got)
	}
}

func TestEnrichTamper(t *testing.T) {
	tests := []struct {
		name     string
		recs     []*audit.Record
		tags     []string
		severity int
	}{
		{
			name: "open_writers",
			recs: []*audit.Record{rec("INTEGRITY_PCR", `pid=3546 uid=0 auid=1000 ses=2 op=invalid_pcr cause=open_writers comm="grep" name="/var/log/audit/audit.log" dev="sda3" ino=21348467 res=1 errno=0`)},
			tags: []string{"ima:open_writers"}, severity: SeverityOpenWriters,
		},
		{
			name: "tomtou",
			recs: []*audit.Record{rec("INTEGRITY_PCR", `pid=1 op=invalid_pcr cause=ToMToU comm="sh" name="/usr/bin/x" res=1`)},
			tags: []string{"ima:tomtou"}, severity: SeverityToMToU,
		},
		{
			name: "pcr other cause",
			recs: []*audit.Record{rec("INTEGRITY_PCR", `pid=1 op=invalid_pcr cause=hashing_error res=0`)},
		},
		{
			name: "pcr other op",
			recs: []*audit.Record{rec("INTEGRITY_PCR", `pid=1 op=add_boot_aggregate cause=open_writers res=1`)},
		},
		{
			name: "data failure",
			recs: []*audit.Record{rec("INTEGRITY_DATA", `pid=1725 uid=0 op=appraise_data cause=invalid-signature comm="sh" name="/usr/bin/xzmore" dev="mmcblk0p4" ino=1137 res=0 errno=0`)},
			tags: []string{"ima:data_failure"}, severity: SeverityDataFailure,
		},
		{
			name: "data failure quoted op (StarlingX)",
			recs: []*audit.Record{rec("INTEGRITY_DATA", `pid=28966 op="appraise_data" cause="invalid-signature" comm=bash name=/usr/bin/sm-dump res=0`)},
			tags: []string{"ima:data_failure"}, severity: SeverityDataFailure,
		},
		{
			name: "data success",
			recs: []*audit.Record{rec("INTEGRITY_DATA", `pid=1 op=appraise_data res=1`)},
		},
		{
			name: "metadata failure",
			recs: []*audit.Record{rec("INTEGRITY_METADATA", `pid=1 op=appraise_metadata cause=invalid-HMAC res=0`)},
			tags: []string{"ima:metadata_failure"}, severity: SeverityMetaFailure,
		},
		{
			name: "several, tag once, highest severity",
			recs: []*audit.Record{
				rec("INTEGRITY_PCR", `op=invalid_pcr cause=ToMToU res=1`),
				rec("INTEGRITY_PCR", `op=invalid_pcr cause=open_writers res=1`),
				rec("INTEGRITY_PCR", `op=invalid_pcr cause=ToMToU res=1`),
			},
			tags: []string{"ima:tomtou", "ima:open_writers"}, severity: SeverityToMToU,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := &audit.Event{Records: tt.recs}
			if err := New(nil).Enrich(context.Background(), ev); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ev.Tags, tt.tags) || ev.Severity != tt.severity {
				t.Errorf("tags %q severity %d; want %q %d", ev.Tags, ev.Severity, tt.tags, tt.severity)
			}
			if len(ev.Hashes) != 0 {
				t.Errorf("Hashes = %+v, want none", ev.Hashes)
			}
		})
	}
}

func TestEnrichKeepsHigherSeverity(t *testing.T) {
	ev := &audit.Event{Records: []*audit.Record{rec("INTEGRITY_PCR", `op=invalid_pcr cause=open_writers`)}}
	ev.Severity = 4
	ev.Tags = []string{"hunt:x"}
	if err := New(nil).Enrich(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if ev.Severity != 4 || !reflect.DeepEqual(ev.Tags, []string{"hunt:x", "ima:open_writers"}) {
		t.Errorf("severity %d tags %q", ev.Severity, ev.Tags)
	}
}

// TestFileHashIsOneOfHashes parses INTEGRITY_RULE lines as the pipeline
// does, runs the enricher and encodes the document: file.hash.* must be one
// of hashes[] for every spelling, and a value that is not a digest must be
// in neither, with a warning (the returned error) and a count.
func TestFileHashIsOneOfHashes(t *testing.T) {
	const h = "654897e5d6ff41bffac650f7f545975757380ae0bf1bb5459c0dc054cb342084"
	tests := []struct {
		value     string // hash= as written on the line
		algo, hex string // "" when the value is not a digest
		inFile    bool   // file.hash carries it (sha224/sha384 have no field)
	}{
		{"sha256:" + h, "sha256", h, true},
		{`"sha256:` + h + `"`, "sha256", h, true},
		{"SHA256:" + h, "sha256", h, true},                  // upper-case prefix: file.hash was empty
		{"sha256:" + strings.ToUpper(h), "sha256", h, true}, // upper-case hex: file.hash was empty
		{"Sha1:" + strings.ToUpper(h[:40]), "sha1", h[:40], true},
		{strings.ToUpper(h[:32]), "md5", h[:32], true}, // legacy bare md5
		{h + h, "sha512", h + h, true},                 // legacy bare sha512
		{"sha384:" + h + h[:32], "sha384", h + h[:32], false},
		{"sha256:" + h[:62], "", "", false}, // 62 digits: was in file.hash, not in hashes[]
		{"sha256:" + h + "00", "", "", false},
		{"sha1:" + h, "", "", false},
		{"sha256:" + h[:63] + "g", "", "", false},
		{h[:56], "", "", false}, // bare 56 digits: not a legacy form
		{`" sha256:` + h + `"`, "", "", false},
		{"crc32:deadbeef", "", "", false},
	}
	for _, tt := range tests {
		line := `type=INTEGRITY_RULE msg=audit(1764000000.000:7): file="/usr/bin/x" hash=` + tt.value + ` ppid=1 pid=2 auid=0 uid=0 comm="x" exe="/usr/bin/x"`
		var p audit.Parser
		r, err := p.Parse(line)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		ev := &audit.Event{Records: []*audit.Record{r}}
		e := New(&metrics.Registry{})
		err = e.Enrich(context.Background(), ev)
		want := uint64(0)
		if tt.algo == "" {
			want = 1
		}
		if grew := e.invalid.Value(); (err != nil) != (want == 1) || grew != want {
			t.Errorf("hash=%s: Enrich error %v, audisp_enrich_hashes_invalid_total grew by %d", tt.value, err, grew)
		}
		var enc encode.Full
		var doc struct {
			File struct {
				Hash map[string]string `json:"hash"`
			} `json:"file"`
			Hashes []struct{ Algo, Hex string } `json:"hashes"`
		}
		if err := json.Unmarshal(enc.Append(nil, ev), &doc); err != nil {
			t.Fatal(err)
		}
		for algo, hex := range doc.File.Hash {
			if !slices.Contains(doc.Hashes, struct{ Algo, Hex string }{algo, hex}) {
				t.Errorf("hash=%s: file.hash.%s=%s is not in hashes[] %v", tt.value, algo, hex, doc.Hashes)
			}
		}
		switch {
		case tt.algo == "":
			if len(doc.File.Hash) != 0 || len(doc.Hashes) != 0 {
				t.Errorf("hash=%s is not a digest but file.hash=%v hashes=%v", tt.value, doc.File.Hash, doc.Hashes)
			}
		case len(doc.Hashes) != 1 || doc.Hashes[0].Algo != tt.algo || doc.Hashes[0].Hex != tt.hex:
			t.Errorf("hash=%s: hashes=%v, want %s:%s", tt.value, doc.Hashes, tt.algo, tt.hex)
		case tt.inFile != (doc.File.Hash[tt.algo] == tt.hex):
			t.Errorf("hash=%s: file.hash=%v", tt.value, doc.File.Hash)
		}
	}
}

// TestNotADigestWarning: the warning the pipeline puts on the event names
// the enricher once (the pool adds "hashes: "; the error also started
// with it) and quotes the decoded value, not the wire text with its quotes.
func TestNotADigestWarning(t *testing.T) {
	var p audit.Parser
	r, err := p.Parse("type=INTEGRITY_RULE msg=audit(1764000000.000:7): file=\"/x\" hash=\"sha256:zz\xff\" pid=2")
	if err != nil {
		t.Fatal(err)
	}
	var warnings []string
	pool := enrich.NewPool([]enrich.Enricher{New(&metrics.Registry{})}, 1, 1, time.Second, &metrics.Registry{}, nil,
		func(ev *audit.Event, _ []byte) { warnings = ev.Warnings })
	pool.Submit(&audit.Event{Records: []*audit.Record{r}})
	pool.Close()
	want := []string{`hashes: record 0 (INTEGRITY_RULE): not a digest: hash="sha256:zz\xff"`}
	if !slices.Equal(warnings, want) {
		t.Errorf("warnings %q, want %q", warnings, want)
	}
}
