package audittest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"

	"github.com/vmihailenco/msgpack/v5"
)

// SameDocument reports how the msgpack document mp differs from the JSON
// document doc (nil when they are the same data): both are decoded
// (vmihailenco/msgpack, encoding/json) and compared field for field, with
// integers compared exactly whatever their msgpack width. mp must be
// exactly one msgpack value, and strings must be msgpack str, not bin.
func SameDocument(doc, mp []byte) error {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var fromJSON, fromMsgpack any
	if err := dec.Decode(&fromJSON); err != nil {
		return fmt.Errorf("JSON: %w", err)
	}
	md := msgpack.NewDecoder(bytes.NewReader(mp))
	if err := md.Decode(&fromMsgpack); err != nil {
		return fmt.Errorf("msgpack: %w", err)
	}
	if err := md.Decode(new(any)); !errors.Is(err, io.EOF) {
		return fmt.Errorf("data after the msgpack value: %v", err)
	}
	if path, diff := firstDiff("", exactNumbers(fromJSON), exactNumbers(fromMsgpack)); path != "" || diff != "" {
		return fmt.Errorf("msgpack differs at %q: %s", path, diff)
	}
	return nil
}

// exactNumbers turns JSON numbers (json.Number) and msgpack integers of
// every width into int64 or uint64, so that both compare exactly.
func exactNumbers(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = exactNumbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = exactNumbers(e)
		}
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		return string(x) // not an integer: stays text, and differs from any msgpack value
	case int8, int16, int32, int64:
		return reflect.ValueOf(x).Int()
	case uint8, uint16, uint32, uint64:
		u := reflect.ValueOf(x).Uint()
		if u <= 1<<63-1 {
			return int64(u)
		}
		return u
	}
	return v
}

// firstDiff names the first path where a and b differ, with both values.
func firstDiff(path string, a, b any) (string, string) {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return path, fmt.Sprintf("%T with %d members vs %T %v", a, len(x), b, keysOf(b))
		}
		for k, e := range x {
			if p, d := firstDiff(path+"."+k, e, y[k]); p != "" || d != "" {
				return p, d
			}
		}
		return "", ""
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return path, fmt.Sprintf("array of %d vs %T", len(x), b)
		}
		for i := range x {
			if p, d := firstDiff(fmt.Sprintf("%s[%d]", path, i), x[i], y[i]); p != "" || d != "" {
				return p, d
			}
		}
		return "", ""
	}
	if a != b {
		return path, fmt.Sprintf("%#v (%T) vs %#v (%T)", a, a, b, b)
	}
	return "", ""
}

func keysOf(v any) []string {
	m, _ := v.(map[string]any)
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
