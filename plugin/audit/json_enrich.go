package audit

import (
	"slices"
	"strconv"
)

// appendEnrichment writes what the enrichers added: threat (ECS), hashes,
// blocklist, allowlisted, package, virustotal, hunt, sigma, related, alert,
// warnings.
func (e *JSONEncoder) appendEnrichment(b []byte, ev *Event) []byte {
	if len(ev.Techniques) > 0 {
		b = e.threat.append(b, ev.Techniques)
	}
	if len(ev.Hashes) > 0 {
		b = append(b, `,"hashes":[`...)
		for i, h := range ev.Hashes {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"path":`...)
			b = e.appendVal(b, h.Path, "hashes.path", "")
			b = append(b, `,"algo":`...)
			b = appendStr(b, h.Algo)
			b = append(b, `,"hex":`...)
			b = appendStr(b, h.Hex)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = appendHits(b, "blocklist", ev.Blocklist)
	b = appendHits(b, "allowlisted", ev.Allowlisted)
	if p := ev.Package; p != nil {
		b = append(b, `,"package":{"status":`...)
		b = appendStr(b, p.Status)
		for _, kv := range [...][2]string{{"manager", p.Manager}, {"name", p.Name}, {"version", p.Version}, {"original_path", p.OriginalPath}} {
			if kv[1] == "" {
				continue
			}
			b = append(b, ',', '"')
			b = append(b, kv[0]...)
			b = append(b, '"', ':')
			b = e.appendVal(b, kv[1], "package.", kv[0])
		}
		b = append(b, '}')
	}
	if v := ev.VirusTotal; v != nil {
		b, e.escaped = appendVirusTotal(b, v, e.escaped)
	}
	b = appendHunt(b, ev.Hunt, true)
	b = appendSigma(b, ev.Sigma)
	b = e.appendProcessContext(b, ev)
	if len(ev.Related) > 0 {
		b = append(b, `,"related":{"events":`...)
		b = appendStrs(b, ev.Related)
		b = append(b, '}')
	}
	if a := ev.Alert; a != nil {
		b = append(b, `,"alert":{"sink":`...)
		b = appendStr(b, a.Sink)
		b = append(b, `,"reason":`...)
		b = appendStr(b, a.Reason)
		b = append(b, `,"count":`...)
		b = strconv.AppendUint(b, a.Count, 10)
		b = append(b, '}')
	}
	if len(ev.Warnings) > 0 {
		b = append(b, `,"warnings":`...)
		b = appendStrs(b, ev.Warnings)
	}
	return b
}

func appendHits(b []byte, name string, hits []ListHit) []byte {
	if len(hits) == 0 {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, `":[`...)
	for i, h := range hits {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"list":`...)
		b = appendStr(b, h.List)
		if h.Label != "" {
			b = append(b, `,"label":`...)
			b = appendStr(b, h.Label)
		}
		b = append(b, `,"hash":`...)
		b = appendStr(b, h.Hash)
		b = append(b, '}')
	}
	return append(b, ']')
}

// threatCache remembers the threat objects rendered for the latest
// technique lists, keyed by their ids. A hit is checked field by field
// against the list it was rendered from, so the output is exactly what
// appendThreat writes; the check is cheap because equal strings from the
// embedded catalog share their bytes (Go compares their pointers first).
// It holds at most maxThreatCache lists.
type threatCache struct {
	m   map[string]renderedThreat
	key []byte
}

type renderedThreat struct {
	ts   []Technique
	json []byte
}

const maxThreatCache = 256

func (c *threatCache) append(b []byte, ts []Technique) []byte {
	c.key = c.key[:0]
	for i := range ts {
		c.key = append(c.key, ts[i].ID...)
		c.key = append(c.key, ',')
	}
	if r, ok := c.m[string(c.key)]; ok && slices.EqualFunc(r.ts, ts, sameTechnique) {
		return append(b, r.json...)
	}
	start := len(b)
	b = appendThreat(b, ts, 3)
	if c.m == nil || len(c.m) >= maxThreatCache {
		c.m = make(map[string]renderedThreat)
	}
	c.m[string(c.key)] = renderedThreat{ts: slices.Clone(ts), json: slices.Clone(b[start:])}
	return b
}

// sameTechnique reports whether a and b render the same threat entries
// (Source is not rendered).
func sameTechnique(a, b Technique) bool {
	return a.ID == b.ID && a.Name == b.Name && a.Reference == b.Reference &&
		a.ParentID == b.ParentID && a.Parent == b.Parent && slices.Equal(a.Tactics, b.Tactics)
}

// appendThreat writes the ECS threat.* fields. ECS keeps parallel arrays:
// technique.* holds the techniques (the parent of a sub-technique),
// technique.subtechnique.* the sub-techniques, tactic.* the tactics; each
// id appears once, in first-seen order. cols is the number of columns
// written: 1 ids, 2 ids and names, 3 ids, names and reference URLs. The
// columns are built in stack arrays, so a usual event allocates nothing
// here.
func appendThreat(b []byte, ts []Technique, cols int) []byte {
	var techBuf, subBuf, tacBuf [16]threatEntry
	tech, sub, tac := techBuf[:0], subBuf[:0], tacBuf[:0]
	for i := range ts {
		t := &ts[i]
		if t.ParentID != "" {
			tech = addEntry(tech, t.ParentID, t.Parent, "")
			sub = addEntry(sub, t.ID, t.Name, t.Reference)
		} else {
			tech = addEntry(tech, t.ID, t.Name, t.Reference)
		}
		for _, ta := range t.Tactics {
			tac = addEntry(tac, ta.ID, ta.Name, ta.Reference)
		}
	}
	b = append(b, `,"threat":{"framework":"MITRE ATT&CK","technique":{`...)
	b = appendEntries(b, tech, cols)
	if len(sub) > 0 {
		b = append(b, `,"subtechnique":{`...)
		b = appendEntries(b, sub, cols)
		b = append(b, '}')
	}
	b = append(b, '}')
	if len(tac) > 0 {
		b = append(b, `,"tactic":{`...)
		b = appendEntries(b, tac, cols)
		b = append(b, '}')
	}
	return append(b, '}')
}

type threatEntry struct{ id, name, url string }

func addEntry(es []threatEntry, id, name, url string) []threatEntry {
	for i := range es {
		if es[i].id == id {
			return es
		}
	}
	return append(es, threatEntry{id, name, url})
}

// appendEntries writes the first cols of "id":[...], "name":[...] and
// "reference":[...]. An empty url means the technique page of the id.
func appendEntries(b []byte, es []threatEntry, cols int) []byte {
	for part, key := range [...]string{`"id":[`, `,"name":[`, `,"reference":[`} {
		if part == cols {
			break
		}
		b = append(b, key...)
		for i := range es {
			if i > 0 {
				b = append(b, ',')
			}
			switch e := &es[i]; {
			case part == 0:
				b = appendStr(b, e.id)
			case part == 1:
				b = appendStr(b, e.name)
			case e.url == "":
				b = appendTechniqueURL(b, e.id)
			default:
				b = appendStr(b, e.url)
			}
		}
		b = append(b, ']')
	}
	return b
}

// appendTechniqueURL writes the ATT&CK page of a technique id (T1059 or
// T1059.004) as a JSON string.
func appendTechniqueURL(b []byte, id string) []byte {
	b = append(b, `"https://attack.mitre.org/techniques/`...)
	for i := 0; i < len(id); i++ {
		if id[i] == '.' {
			b = append(b, id[:i]...)
			b = append(b, '/')
			b = append(b, id[i+1:]...)
			return append(b, `/"`...)
		}
	}
	b = append(b, id...)
	return append(b, `/"`...)
}

// appendVirusTotal writes `,"virustotal":{...}`; paths of values written
// in the escaped form are appended to escaped.
func appendVirusTotal(b []byte, v *VTResult, escaped []string) ([]byte, []string) {
	b = append(b, `,"virustotal":{"status":`...)
	b = appendStr(b, v.Status)
	if v.Reason != "" {
		b = append(b, `,"reason":`...)
		b = appendStr(b, v.Reason)
	}
	if v.Hash != "" {
		b = append(b, `,"hash":`...)
		b = appendStr(b, v.Hash)
	}
	if d := v.VTVerdict; d != nil {
		for _, kv := range [...]struct {
			k string
			v int64
		}{{"malicious", d.Malicious}, {"suspicious", d.Suspicious}, {"harmless", d.Harmless},
			{"undetected", d.Undetected}, {"reputation", d.Reputation},
			{"first_submission_date", d.FirstSubmission}, {"last_analysis_date", d.LastAnalysis}} {
			b = append(b, ',', '"')
			b = append(b, kv.k...)
			b = append(b, '"', ':')
			b = strconv.AppendInt(b, kv.v, 10)
		}
		for _, kv := range [...][2]string{{"threat_label", d.ThreatLabel}, {"meaningful_name", d.MeaningfulName}, {"link", d.Link}} {
			if kv[1] == "" {
				continue
			}
			b = append(b, ',', '"')
			b = append(b, kv[0]...)
			b = append(b, '"', ':')
			var ok bool
			if b, ok = appendStrOK(b, kv[1]); !ok {
				escaped = append(escaped, "virustotal."+kv[0])
			}
		}
	}
	b = append(b, '}')
	return b, escaped
}

// appendHunt writes `,"hunt":[...]` when a hunting rule matched, each
// rule's tags only when tags is set.
func appendHunt(b []byte, hunt []HuntHit, tags bool) []byte {
	if len(hunt) == 0 {
		return b
	}
	b = append(b, `,"hunt":[`...)
	for i, h := range hunt {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"rule":`...)
		b = appendStr(b, h.Rule)
		b = append(b, `,"severity":`...)
		b = strconv.AppendInt(b, int64(h.Severity), 10)
		if tags && len(h.Tags) > 0 {
			b = append(b, `,"tags":`...)
			b = appendStrs(b, h.Tags)
		}
		b = append(b, '}')
	}
	b = append(b, ']')
	return b
}

// appendSigma writes `,"sigma":[...]` when a Sigma rule matched.
func appendSigma(b []byte, sigma []SigmaHit) []byte {
	if len(sigma) == 0 {
		return b
	}
	b = append(b, `,"sigma":[`...)
	for i, h := range sigma {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"id":`...)
		b = appendStr(b, h.ID)
		b = append(b, `,"title":`...)
		b = appendStr(b, h.Title)
		if h.Level != "" {
			b = append(b, `,"level":`...)
			b = appendStr(b, h.Level)
		}
		if h.Author != "" {
			b = append(b, `,"author":`...)
			b = appendStr(b, h.Author)
		}
		if len(h.Tags) > 0 {
			b = append(b, `,"tags":`...)
			b = appendStrs(b, h.Tags)
		}
		b = append(b, '}')
	}
	b = append(b, ']')
	return b
}
