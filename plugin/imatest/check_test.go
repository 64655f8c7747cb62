package imatest

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// doc is the part of one output document the checks read (see
// docs/schema/event.schema.json for all of it).
type doc struct {
	Kind  string `json:"kind"`
	Event struct {
		ID       string `json:"id"`
		Serial   uint64 `json:"serial"`
		TimedOut bool   `json:"timed_out"`
	} `json:"event"`
	Warnings []string `json:"warnings"`
	Records  []struct {
		Type   string            `json:"type"`
		Fields map[string]string `json:"fields"`
		Raw    map[string]string `json:"raw"`
	} `json:"records"`
	User struct {
		ID    string `json:"id"`
		Name  string `json:"name"`
		Audit struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"audit"`
	} `json:"user"`
	File struct {
		Path string `json:"path"`
		Hash struct {
			SHA256 string `json:"sha256"`
		} `json:"hash"`
	} `json:"file"`
	Tags   []string `json:"tags"`
	Threat struct {
		Technique struct {
			ID   []string `json:"id"`
			Name []string `json:"name"`
			Sub  struct {
				ID   []string `json:"id"`
				Name []string `json:"name"`
			} `json:"subtechnique"`
		} `json:"technique"`
		Tactic struct {
			ID   []string `json:"id"`
			Name []string `json:"name"`
		} `json:"tactic"`
	} `json:"threat"`
	Blocklist []struct {
		List  string `json:"list"`
		Label string `json:"label"`
		Hash  string `json:"hash"`
	} `json:"blocklist"`
	Hunt []struct {
		Rule string `json:"rule"`
	} `json:"hunt"`
	Hashes []struct {
		Path string `json:"path"`
		Algo string `json:"algo"`
		Hex  string `json:"hex"`
	} `json:"hashes"`
	Package pkgVerdict `json:"package"`

	line []byte
}

// parseDocs splits the plugin's JSON Lines output; every line must be JSON.
func parseDocs(t *testing.T, s string) []doc {
	var docs []doc
	for i, line := range strings.Split(s, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var d doc
		if err := json.Unmarshal([]byte(line), &d); err != nil {
			t.Errorf("events.jsonl line %d is not a JSON document: %v: %.200s", i+1, err, line)
			continue
		}
		d.line = []byte(line)
		docs = append(docs, d)
	}
	return docs
}

// docWithHash returns the audit document whose first IMA hash (hashes[],
// in record order) is h of the file at path p, and how many documents have
// it first.
func docWithHash(docs []doc, h, p string) (doc, int) {
	n, at := 0, -1
	for i, d := range docs {
		if d.Kind == "audit" && len(d.Hashes) > 0 && d.Hashes[0].Hex == h && d.Hashes[0].Path == p {
			if at < 0 {
				at = i
			}
			n++
		}
	}
	if at < 0 {
		return doc{}, 0
	}
	return docs[at], n
}

func (d doc) recordTypes() []string {
	var t []string
	for _, r := range d.Records {
		t = append(t, r.Type)
	}
	return t
}

// checkPlugin checks the plugin's enriched output scenario by scenario.
func checkPlugin(t *testing.T, docs []doc, scs []scenario) {
	if len(docs) == 0 {
		t.Errorf("the plugin wrote no documents")
		return
	}
	seenIDs := map[string]string{}
	for _, sc := range scs {
		t.Run("plugin/"+sc.ID, func(t *testing.T) {
			d, n := docWithHash(docs, sc.Hashes[0], sc.Path)
			if n == 0 {
				t.Fatalf("%s: %s: no audit document whose hashes[] starts with %s of %s", sc.ID, sc.Title, sc.Hashes[0], sc.Path)
			}
			if n > 1 {
				t.Errorf("%s: %d documents carry %s, want 1", sc.ID, n, sc.Hashes[0])
			}
			if prev, dup := seenIDs[d.Event.ID]; dup {
				t.Errorf("%s: event %s is also %s's event", sc.ID, d.Event.ID, prev)
			}
			seenIDs[d.Event.ID] = sc.ID
			// The kernel ends each of these events with EOE, so none may
			// have been closed by the timeout, and nothing went wrong.
			if d.Event.TimedOut {
				t.Errorf("%s: event %s was closed by the timeout, not by its EOE", sc.ID, d.Event.ID)
			}
			if len(d.Warnings) > 0 {
				t.Errorf("%s: event %s carries warnings %q", sc.ID, d.Event.ID, d.Warnings)
			}
			// file.* names the executed file; for a script the encoder may
			// name the script or the interpreter, but path and hash must pair up.
			got := d.File.Path + " " + d.File.Hash.SHA256
			want := []string{sc.Path + " " + sc.Hashes[0]}
			if sc.Interpreter != "" {
				want = append(want, sc.Interpreter+" "+sc.Hashes[1])
			}
			if !slices.Contains(want, got) {
				t.Errorf("%s: file.path and file.hash.sha256 are %q, want one of %q", sc.ID, got, want)
			}
			// The records the kernel emitted for the exec, joined in one event.
			types := d.recordTypes()
			for _, typ := range []string{"SYSCALL", "EXECVE", "PROCTITLE", "INTEGRITY_RULE"} {
				if !slices.Contains(types, typ) {
					t.Errorf("%s: event %s lacks a %s record: has %v", sc.ID, d.Event.ID, typ, types)
				}
			}
			// Every hash of the scenario, in record order, in records and hashes[].
			var recHashes, listed, listedPaths []string
			var irFile, irRawFile []string
			for _, r := range d.Records {
				if r.Type == "INTEGRITY_RULE" {
					recHashes = append(recHashes, strings.TrimPrefix(r.Fields["hash"], "sha256:"))
					irFile = append(irFile, r.Fields["file"])
					irRawFile = append(irRawFile, r.Raw["file"])
				}
			}
			for _, h := range d.Hashes {
				if h.Algo == "sha256" {
					listed = append(listed, h.Hex)
					listedPaths = append(listedPaths, h.Path)
				}
			}
			if !slices.Equal(recHashes, sc.Hashes) {
				t.Errorf("%s: INTEGRITY_RULE records carry %v, want %v", sc.ID, recHashes, sc.Hashes)
			}
			if !slices.Equal(listed, sc.Hashes) {
				t.Errorf("%s: hashes[] is %v, want %v", sc.ID, listed, sc.Hashes)
			}
			wantPaths := []string{sc.Path}
			if sc.Interpreter != "" {
				wantPaths = append(wantPaths, sc.Interpreter)
			}
			if !slices.Equal(irFile, wantPaths) || !slices.Equal(listedPaths, wantPaths) {
				t.Errorf("%s: INTEGRITY_RULE fields.file %q, hashes[].path %q, want %q", sc.ID, irFile, listedPaths, wantPaths)
			}
			if sc.HexPath && len(irRawFile) > 0 {
				if want := strings.ToUpper(hex.EncodeToString([]byte(sc.Path))); irRawFile[0] != want {
					t.Errorf("%s: INTEGRITY_RULE raw.file %q, want the hex %q", sc.ID, irRawFile[0], want)
				}
			}
			tags := slices.Clone(d.Tags)
			slices.Sort(tags)
			wantTags := slices.Clone(sc.Tags)
			slices.Sort(wantTags)
			if !slices.Equal(tags, wantTags) {
				t.Errorf("%s: tags %q, want exactly %q", sc.ID, d.Tags, sc.Tags)
			}
			if sc.Blocklist != "" {
				ok := false
				for _, b := range d.Blocklist {
					ok = ok || (b.List == sc.Blocklist && b.Hash == sc.Hashes[0])
				}
				if !ok {
					t.Errorf("%s: blocklist %+v has no hit of list %q for %s", sc.ID, d.Blocklist, sc.Blocklist, sc.Hashes[0])
				}
			} else if len(d.Blocklist) > 0 {
				t.Errorf("%s: unexpected blocklist hits %+v", sc.ID, d.Blocklist)
			}
			var rules []string
			for _, h := range d.Hunt {
				rules = append(rules, h.Rule)
			}
			slices.Sort(rules)
			wantRules := slices.Clone(sc.Hunt)
			slices.Sort(wantRules)
			if !slices.Equal(rules, wantRules) {
				t.Errorf("%s: hunt rules %q, want exactly %q", sc.ID, rules, wantRules)
			}
			if sc.Technique != "" {
				th := d.Threat
				ids := append(slices.Clone(th.Technique.ID), th.Technique.Sub.ID...)
				names := append(slices.Clone(th.Technique.Name), th.Technique.Sub.Name...)
				if !slices.Contains(ids, sc.Technique) || !slices.Contains(names, sc.TechniqueName) ||
					!slices.Contains(th.Tactic.Name, sc.Tactic) {
					t.Errorf("%s: threat %+v, want technique %s %q with tactic %q", sc.ID, th, sc.Technique, sc.TechniqueName, sc.Tactic)
				}
			} else if len(d.Threat.Technique.ID) > 0 {
				t.Errorf("%s: unexpected threat %+v", sc.ID, d.Threat)
			}
			// Package trust: the guest's dpkg database owns only the files
			// of scenarios 9-11; every other file is unowned.
			wantPkg := sc.Package
			if wantPkg.Status == "" {
				wantPkg = pkgVerdict{Status: "unowned", Manager: "dpkg"}
			}
			if d.Package != wantPkg {
				t.Errorf("%s: package %+v, want %+v", sc.ID, d.Package, wantPkg)
			}
			if sc.UIDName != "" {
				got := fmt.Sprintf("user %s(%s) audit %s(%s)", d.User.Name, d.User.ID, d.User.Audit.Name, d.User.Audit.ID)
				want := fmt.Sprintf("user %s(%s) audit %s(%s)", sc.UIDName, sc.UID, sc.AUIDName, sc.AUID)
				if got != want {
					t.Errorf("%s: %s, want %s", sc.ID, got, want)
				}
			}
			t.Logf("%s event %s: file.path %q sha256 %s tags %q package %+v", sc.ID, d.Event.ID, d.File.Path, strings.Join(listed, " + "), d.Tags, d.Package)
		})
	}
}

// checkSchema validates every document against the project's JSON Schema.
func checkSchema(t *testing.T, root string, docs []doc) {
	t.Run("schema", func(t *testing.T) {
		path := filepath.Join(root, "docs", "schema", "event.schema.json")
		if _, err := os.Stat(path); err != nil {
			t.Fatalf("cannot validate the output: JSON Schema %s is missing (%v)", path, err)
		}
		sch, err := jsonschema.NewCompiler().Compile(path)
		if err != nil {
			t.Fatalf("compile %s: %v", path, err)
		}
		bad := 0
		for i, d := range docs {
			v, err := jsonschema.UnmarshalJSON(bytes.NewReader(d.line))
			if err == nil {
				err = sch.Validate(v)
			}
			if err != nil {
				if bad++; bad <= 5 {
					t.Errorf("document %d (event %s) does not validate against %s: %v\n%s", i+1, d.Event.ID, path, err, d.line)
				}
			}
		}
		t.Logf("%d documents checked against %s, %d invalid", len(docs), path, bad)
	})
}

// parseErrorLine matches the log lines that report rejected input.
var parseErrorLine = regexp.MustCompile(`(?i)pars(e|ing) error|rejected line|cannot parse|malformed`)

// finalParseErrors finds parse_errors=N in the plugin's final status report.
var finalParseErrors = regexp.MustCompile(`report=final .*\bparse_errors=(\d+)`)

// checkNoParseErrors fails when the plugin reported rejected input: in its
// parse-error file, in a log line, or in the parse_errors count of the
// final status report it logs when it stops (which must be there).
func checkNoParseErrors(t *testing.T, files map[string]string) {
	t.Run("parse-errors", func(t *testing.T) {
		if s := strings.TrimSpace(files["parse-errors.log"]); s != "" {
			t.Errorf("the plugin rejected input lines:\n%s", s)
		}
		final := ""
		for _, line := range strings.Split(files["syslog"], "\n") {
			if !strings.Contains(line, "audisp-enrich") {
				continue
			}
			if parseErrorLine.MatchString(line) {
				t.Errorf("plugin log reports a parse error: %s", line)
			}
			if m := finalParseErrors.FindStringSubmatch(line); m != nil {
				final = m[1]
				t.Logf("final status: %s", line)
			}
		}
		if final == "" {
			t.Errorf("the plugin logged no final status report with parse_errors= to syslog; syslog was:\n%s", files["syslog"])
		} else if final != "0" {
			t.Errorf("the plugin counted %s parse errors", final)
		}
	})
}
