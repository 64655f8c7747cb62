package encode

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"strconv"
	"strings"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit/audittest"
)

// pipeline is audit.Parser + audit.Reassembler + Full as the plugin wires them,
// collecting documents and parse errors.
type pipeline struct {
	p    audit.Parser
	r    *audit.Reassembler
	enc  Full
	out  []byte
	evs  []*audit.Event
	errs []error
}

func newPipeline(cfg audit.ReassemblerConfig) *pipeline {
	pl := &pipeline{}
	pl.r = audit.NewReassembler(cfg, func(ev *audit.Event) {
		pl.evs = append(pl.evs, ev)
		pl.out = pl.enc.Append(pl.out, ev)
	})
	return pl
}

func (pl *pipeline) line(l string) {
	rec, err := pl.p.Parse(l)
	if err != nil {
		pl.errs = append(pl.errs, err)
		return
	}
	pl.r.Push(rec)
}

// replay runs every line of data (newline separated) through a stream-time
// pipeline and flushes it.
func replay(t testing.TB, data []byte) *pipeline {
	t.Helper()
	pl := newPipeline(audit.ReassemblerConfig{StreamTime: true})
	for _, l := range bytes.Split(data, []byte("\n")) {
		if len(l) > 0 {
			pl.line(string(l))
		}
	}
	pl.r.Flush()
	return pl
}

// validate checks documents against docs/schema/event.schema.json and
// the key and UTF-8 guarantees.
func validate(t testing.TB, docs []byte) {
	t.Helper()
	audittest.ValidateJSONLines(t, docs)
}

// kv is one member of a JSON object, in document order.
type kv struct {
	K string
	V any
}

// decodeOrdered decodes one JSON value keeping object member order:
// objects become []kv, arrays []any, numbers json.Number.
func decodeOrdered(doc []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	return decodeValue(dec)
}

func decodeValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return tok, nil
	}
	switch d {
	case '{':
		var obj []kv
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return nil, err
			}
			v, err := decodeValue(dec)
			if err != nil {
				return nil, err
			}
			obj = append(obj, kv{k.(string), v})
		}
		_, err = dec.Token()
		if obj == nil {
			obj = []kv{}
		}
		return obj, err
	case '[':
		arr := []any{}
		for dec.More() {
			v, err := decodeValue(dec)
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
		}
		_, err = dec.Token()
		return arr, err
	}
	return nil, fmt.Errorf("unexpected %v", d)
}

func get(obj any, key string) (any, bool) {
	o, _ := obj.([]kv)
	for _, m := range o {
		if m.K == key {
			return m.V, true
		}
	}
	return nil, false
}

func getStr(obj any, key string) string {
	v, _ := get(obj, key)
	s, _ := v.(string)
	return s
}

// unescapeHH reverses the \xHH escaping of a value that was not valid UTF-8.
func unescapeHH(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' {
			if i+3 >= len(s) || s[i+1] != 'x' {
				return "", fmt.Errorf("lone backslash at %d in escaped value %q", i, s)
			}
			v, err := hex.DecodeString(s[i+2 : i+4])
			if err != nil {
				return "", err
			}
			b.WriteByte(v[0])
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String(), nil
}

// originalName undoes the ~N rename of a key repeated ignoring case:
// origs are the original names of the earlier keys of the object.
func originalName(key string, origs []string) string {
	i := strings.LastIndexByte(key, '~')
	if i <= 0 {
		return key
	}
	if n, err := strconv.Atoi(key[i+1:]); err != nil || n < 2 {
		return key
	}
	for _, o := range origs {
		if strings.EqualFold(o, key[:i]) {
			return key[:i]
		}
	}
	return key
}

// rebuildLines rebuilds the original audit lines of one document by the
// rules of docs/schema.md.
func rebuildLines(doc []byte) ([]string, error) {
	v, err := decodeOrdered(doc)
	if err != nil {
		return nil, err
	}
	ev, _ := get(v, "event")
	id := getStr(ev, "id")
	if top, ok := get(v, "escaped"); ok {
		for _, p := range top.([]any) {
			if p == "event.id" {
				if id, err = unescapeHH(id); err != nil {
					return nil, err
				}
			}
		}
	}
	j := strings.LastIndexByte(id, ':')
	k := strings.LastIndexByte(id[:j], ':')
	node, stamp := id[:k], id[k+1:]
	recs, _ := get(v, "records")
	var lines []string
	for _, rv := range recs.([]any) {
		esc := map[string]bool{}
		if e, ok := get(rv, "escaped"); ok {
			for _, p := range e.([]any) {
				esc[p.(string)] = true
			}
		}
		val := func(path, s string) (string, error) {
			if esc[path] {
				return unescapeHH(s)
			}
			return s, nil
		}
		if l, ok := get(rv, "line"); ok {
			s, err := val("line", l.(string))
			if err != nil {
				return nil, err
			}
			lines = append(lines, s)
			continue
		}
		var b strings.Builder
		if node != "" {
			b.WriteString("node=" + node + " ")
		}
		typ, err := val("type", getStr(rv, "type"))
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "type=%s msg=audit(%s):", typ, stamp)
		raw, _ := get(rv, "raw")
		rawObj, _ := raw.([]kv)
		fields, _ := get(rv, "fields")
		fobj := fields.([]kv)
		enc := getStr(rv, "enc")
		if len(enc) != len(fobj) {
			return nil, fmt.Errorf("record %s: enc %q has %d letters for %d fields", typ, enc, len(enc), len(fobj))
		}
		var origs []string
		for i, f := range fobj {
			name := originalName(f.K, origs)
			origs = append(origs, name)
			wire, err := wireValue(enc[i], f.K, name, f.V, rawObj, "fields.", "raw.", val)
			if err != nil {
				return nil, fmt.Errorf("record %s field %s: %w", typ, f.K, err)
			}
			b.WriteString(" " + name + "=" + wire)
		}
		if en, ok := get(rv, "enriched"); ok {
			eobj := en.([]kv)
			eenc := getStr(rv, "enriched_enc")
			if len(eenc) != len(eobj) {
				return nil, fmt.Errorf("record %s: enriched_enc %q for %d values", typ, eenc, len(eobj))
			}
			b.WriteByte(0x1D)
			var origs []string
			for i, f := range eobj {
				if i > 0 {
					b.WriteByte(' ')
				}
				name := originalName(f.K, origs)
				origs = append(origs, name)
				wire, err := wireValue(eenc[i], f.K, name, f.V, nil, "enriched.", "", val)
				if err != nil {
					return nil, fmt.Errorf("record %s enriched %s: %w", typ, f.K, err)
				}
				b.WriteString(name + "=" + wire)
			}
		}
		lines = append(lines, b.String())
	}
	return lines, nil
}

// wireValue rebuilds the wire form of one value from its enc letter.
func wireValue(letter byte, key, name string, v any, raw []kv, path, rawPath string, val func(string, string) (string, error)) (string, error) {
	if r, ok := get(raw, key); ok {
		return val(rawPath+name, r.(string))
	}
	s, isStr := v.(string)
	if !isStr {
		return "", fmt.Errorf("value %v of type %T has no raw form", v, v)
	}
	s, err := val(path+name, s)
	if err != nil {
		return "", err
	}
	switch letter {
	case 'b':
		return s, nil
	case 'q':
		return `"` + s + `"`, nil
	case 'h':
		return strings.ToUpper(hex.EncodeToString([]byte(s))), nil
	}
	return "", fmt.Errorf("enc letter %q needs a raw value", letter)
}

// splitDocs returns the non-empty lines of JSON Lines output.
func splitDocs(out []byte) [][]byte {
	var docs [][]byte
	for _, l := range bytes.Split(out, []byte("\n")) {
		if len(l) > 0 {
			docs = append(docs, l)
		}
	}
	return docs
}
