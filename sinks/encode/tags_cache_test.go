package encode

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

// The full encoder's tags cache must write what writing each tag writes,
// in both formats: a shared list again (after keys or none), a list one
// of whose tags is a key (written once, among the keys) again with equal
// keys and with other keys, tags that need escaping (listed under
// "escaped" again), every tag a key, a shorter slice of the same array,
// an equal list in another array, no tags.
func TestTagCacheExact(t *testing.T) {
	shared := []string{"hunt:exec_from_temp_dir", "exec_from_temp", "sigma:a39d7fa7-3fbd-4dc2-97e1-d87f546b1bbc"}
	odd := []string{`quote"d`, "bad\xff"}
	cases := []struct{ keys, tags []string }{
		{nil, shared}, {nil, shared}, {[]string{"T1059.004_corpus"}, shared}, {[]string{"T1059.004_corpus"}, shared},
		{[]string{"exec_from_temp"}, shared}, {[]string{"exec_from_temp"}, shared}, {[]string{"k"}, shared},
		{[]string{"exec_from_temp"}, shared}, {nil, odd}, {[]string{"k"}, odd}, {nil, odd}, {[]string{"k"}, odd},
		{[]string{`quote"d`}, odd}, {[]string{`quote"d`}, odd}, {shared, shared}, {shared, shared}, {nil, shared},
		{nil, shared[:2]}, {[]string{"k"}, shared[:1]}, {nil, shared[:1]}, {nil, slices.Clone(shared)}, {nil, nil},
		{[]string{"k"}, nil}, {nil, shared},
	}
	for _, f := range []Format{JSON, Msgpack} {
		cached := Full{Format: f}
		for i, c := range cases {
			ev := &audit.Event{Kind: audit.KindAudit, ID: audit.EventID{Sec: 1796454792, Serial: uint32(i)}}
			ev.Tags = c.tags
			ev.Summary = &audit.Summary{Keys: c.keys}
			got := slices.Clone(cached.Append(nil, ev))
			uncached := Full{Format: f}
			want := uncached.Append(nil, ev)
			if !bytes.Equal(got, want) {
				t.Errorf("format %d case %d: cached %q\nwant %q", f, i, got, want)
			}
			if f == JSON && c.tags != nil && strings.Count(string(got), `"exec_from_temp"`) > 1 {
				t.Errorf("case %d: a tag that is a key written twice: %s", i, got)
			}
		}
	}
}
