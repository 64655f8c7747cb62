package encode

import (
	"bytes"
	"strings"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

// The encoder's sigma cache must write what Sigma writes, in both
// formats, also when a hit with the same rule id but another title,
// level, author or tags comes next (a reloaded rule).
func TestSigmaCacheExact(t *testing.T) {
	tmp := audit.SigmaHit{ID: "312b42b1-bded-4441-8b58-163a3af58775", Title: "Potentially Suspicious Execution From Tmp Folder",
		Level: "medium", Author: "Joseliyo Sanchez, @Joseliyo_Jstnk", Tags: []string{"attack.stealth", "attack.t1036"}}
	folders := audit.SigmaHit{ID: "a39d7fa7-3fbd-4dc2-97e1-d87f546b1bbc", Title: "Program Executions in Suspicious Folders",
		Level: "medium", Author: "Florian Roth (Nextron Systems)", Tags: []string{"attack.t1587", "attack.t1584"}}
	retitled, raised, untagged := tmp, tmp, tmp
	retitled.Title = "Execution From Tmp \"Folder\""
	raised.Level = "high"
	untagged.Tags, untagged.Author = nil, ""
	retagged := tmp
	retagged.Tags = []string{"attack.stealth", "attack.t1036.005"}
	var c SigmaCache
	cached := func(f Format, hits []audit.SigmaHit) []byte {
		var w Writer
		w.Reset(f, nil)
		w.Open()
		c.Write(&w, hits)
		w.Close()
		return w.B
	}
	for _, f := range []Format{JSON, Msgpack, JSON, Msgpack} {
		for i, hits := range [][]audit.SigmaHit{{tmp}, {tmp}, {retitled}, {raised}, {untagged}, {retagged}, {folders, tmp}, {tmp, folders}, {folders, tmp}, nil} {
			got := cached(f, hits)
			var w Writer
			w.Reset(f, nil)
			w.Open()
			Sigma(&w, hits)
			w.Close()
			if !bytes.Equal(got, w.B) {
				t.Errorf("format %d list %d: cached %q\nwant %q", f, i, got, w.B)
			}
		}
	}
	if got := string(cached(JSON, []audit.SigmaHit{retagged})); !strings.Contains(got, "attack.t1036.005") {
		t.Errorf("retagged hit rendered from the cache: %s", got)
	}
	for i := range 2 * maxThreatCache {
		cached(JSON, []audit.SigmaHit{{ID: strings.Repeat("x", i+1), Title: "t"}})
	}
	if len(c.c.m) > maxThreatCache {
		t.Errorf("cache holds %d lists, bound %d", len(c.c.m), maxThreatCache)
	}
}
