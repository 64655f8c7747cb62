// Package audittest validates audisp-enrich output documents in tests:
// every line against docs/schema/event.schema.json, plus the guarantees a
// JSON Schema cannot express (valid UTF-8, no two keys of one object equal
// ignoring case, no duplicate keys).
//
// It is a small non-test package so that tests of any package (the
// pipeline, integration, IMA, sinks) can call it. Of this module it imports
// only plugin/testsupport (the module root).
package audittest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
)

// SchemaPath is the schema of the full profile, relative to the module root.
const SchemaPath = "docs/schema/event.schema.json"

// ECSSchemaPath is the schema of the ecs profile, relative to the module root.
const ECSSchemaPath = "docs/schema/ecs.schema.json"

var (
	mu      sync.Mutex
	schemas = map[string]*jsonschema.Schema{}
)

// Schema returns the compiled event schema (compiled once per process).
func Schema() (*jsonschema.Schema, error) { return SchemaAt(SchemaPath) }

// SchemaAt returns the compiled schema at rel, a path relative to the
// module root (compiled once per process).
func SchemaAt(rel string) (*jsonschema.Schema, error) {
	mu.Lock()
	defer mu.Unlock()
	if s, ok := schemas[rel]; ok {
		return s, nil
	}
	root, err := testsupport.ModuleRoot()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(root, rel)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("JSON Schema missing: %w", err)
	}
	s, err := jsonschema.NewCompiler().Compile(path)
	if err != nil {
		return nil, err
	}
	schemas[rel] = s
	return s, nil
}

// ValidateJSONLines checks every non-empty line of data as one document:
// valid UTF-8, valid JSON, no duplicate or case-insensitively equal keys in
// any object, and valid against the event schema. Each problem is reported
// with t.Errorf naming the line number and a prefix of the line; a schema
// that cannot be loaded is fatal.
func ValidateJSONLines(t testing.TB, data []byte) {
	t.Helper()
	ValidateJSONLinesAt(t, SchemaPath, data)
}

// ValidateJSONLinesAt is ValidateJSONLines against the schema at rel
// (relative to the module root).
func ValidateJSONLinesAt(t testing.TB, rel string, data []byte) {
	t.Helper()
	sch, err := SchemaAt(rel)
	if err != nil {
		t.Fatalf("audittest: %v", err)
	}
	n := 0
	for i, line := range bytes.Split(data, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		n++
		if err := ValidateDocument(sch, line); err != nil {
			t.Errorf("audittest: document on line %d is invalid: %v\n  document: %s", i+1, err, clip(line))
		}
	}
	if n == 0 && len(bytes.TrimSpace(data)) > 0 {
		t.Errorf("audittest: no documents in %d bytes", len(data))
	}
}

// ValidateDocument checks one document (see ValidateJSONLines).
func ValidateDocument(sch *jsonschema.Schema, doc []byte) error {
	if !utf8.Valid(doc) {
		return errors.New("not valid UTF-8")
	}
	if err := CheckKeys(doc); err != nil {
		return err
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return fmt.Errorf("not valid JSON: %w", err)
	}
	if err := sch.Validate(v); err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	return nil
}

// CheckKeys returns an error when an object in the JSON text doc has two
// keys that are equal or differ only by case (Unicode simple folding), or
// when doc is not one JSON value.
func CheckKeys(doc []byte) error {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	if err := walk(dec, "$"); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

func walk(dec *json.Decoder, path string) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("not valid JSON at %s: %w", path, err)
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	switch d {
	case '{':
		seen := map[string]string{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return fmt.Errorf("not valid JSON at %s: %w", path, err)
			}
			k := kt.(string)
			fold := foldKey(k)
			if prev, dup := seen[fold]; dup {
				return fmt.Errorf("object %s has keys %q and %q, equal ignoring case", path, prev, k)
			}
			seen[fold] = k
			if err := walk(dec, path+"."+k); err != nil {
				return err
			}
		}
	case '[':
		for i := 0; dec.More(); i++ {
			if err := walk(dec, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	}
	_, err = dec.Token() // closing delimiter
	return err
}

// foldKey maps every rune of k to the smallest rune of its Unicode case
// folding orbit, so two keys are equal ignoring case exactly when their
// foldKeys are equal (the relation strings.EqualFold uses).
func foldKey(k string) string {
	var b strings.Builder
	b.Grow(len(k))
	for _, r := range k {
		m := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			m = min(m, f)
		}
		b.WriteRune(m)
	}
	return b.String()
}

func clip(b []byte) string {
	if len(b) > 600 {
		return string(b[:600]) + "..."
	}
	return string(b)
}
