package encode

import (
	"slices"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

// enrichment writes what the enrichers added: threat (ECS), hashes,
// blocklist, allowlisted, package, virustotal, hunt, sigma, related, alert,
// warnings.
//
// threat, hunt and sigma come from the rule enrichers' shared lists
// (audit.Enrichment): when nothing is written between them (no hash
// finding), they are one run of members, which e.rules appends whole for
// the next event with the same three lists.
func (e *Full) enrichment(w *Writer, ev *audit.Event) {
	findings := hasHashFindings(ev)
	if findings || !e.rules.reuse(w, ev) {
		m := w.mark()
		if len(ev.Techniques) > 0 {
			e.threat.Write(w, ev.Techniques, true)
		}
		if findings {
			e.hashFindings(w, ev)
		}
		Hunt(w, ev.Hunt, true)
		e.sigma.Write(w, ev.Sigma)
		if !findings {
			e.rules.remember(w, ev, m)
		}
	}
	e.processContext(w, ev)
	if len(ev.Related) > 0 {
		w.Key("related")
		w.Open()
		w.Key("events")
		e.vals(w, ev.Related, "related.events")
		w.Close()
	}
	if a := ev.Alert; a != nil {
		w.Key("alert")
		w.Open()
		w.Key("sink")
		w.Str(a.Sink)
		w.Key("reason")
		w.Str(a.Reason)
		w.Key("count")
		w.Uint(a.Count)
		w.Close()
	}
	if len(ev.Warnings) > 0 {
		w.Key("warnings")
		e.vals(w, ev.Warnings, "warnings")
	}
}

// hasHashFindings reports whether hashFindings writes anything for ev. The
// two must agree: a member hashFindings writes that this test misses would
// be kept in the rule run and replayed on the next event.
func hasHashFindings(ev *audit.Event) bool {
	return len(ev.Hashes) > 0 || len(ev.Blocklist) > 0 || len(ev.Allowlisted) > 0 || ev.Package != nil || ev.VirusTotal != nil
}

// hashFindings writes what the hash enrichers found: hashes, blocklist,
// allowlisted, package, virustotal (see hasHashFindings).
func (e *Full) hashFindings(w *Writer, ev *audit.Event) {
	if len(ev.Hashes) > 0 {
		w.Key("hashes")
		w.OpenArray()
		for _, h := range ev.Hashes {
			w.Open()
			w.Key("path")
			e.val(w, h.Path, "hashes.path", "")
			w.Key("algo")
			w.Str(h.Algo)
			w.Key("hex")
			w.Str(h.Hex)
			w.Close()
		}
		w.CloseArray()
	}
	e.escaped = Hits(w, "blocklist", ev.Blocklist, e.escaped)
	e.escaped = Hits(w, "allowlisted", ev.Allowlisted, e.escaped)
	if p := ev.Package; p != nil {
		w.Key("package")
		w.Open()
		w.Key("status")
		w.Str(p.Status)
		for _, kv := range [...][2]string{{"manager", p.Manager}, {"name", p.Name}, {"version", p.Version}, {"original_path", p.OriginalPath}} {
			if kv[1] != "" {
				w.Key(kv[0])
				e.val(w, kv[1], "package.", kv[0])
			}
		}
		w.Close()
	}
	if v := ev.VirusTotal; v != nil {
		e.escaped = VirusTotal(w, v, e.escaped)
	}
}

// ruleRun is the last run of the members threat, hunt and sigma a Full
// encoder wrote (with nothing between them), kept with the three lists it
// was written from. Under audit.Enrichment's contract a list that is the
// same slice as one of them holds the same elements, and the run's bytes
// depend on nothing else (their strings are never listed in "escaped"),
// so an event with the same three lists gets the same bytes. The run
// holds the lists themselves, so their arrays are not reused while it
// compares against them.
type ruleRun struct {
	span       // the members, as written
	techniques []audit.Technique
	hunt       []audit.HuntHit
	sigma      []audit.SigmaHit
}

// reuse appends the remembered run when ev has its three lists, in w's
// format, and reports whether it did.
func (r *ruleRun) reuse(w *Writer, ev *audit.Event) bool {
	return audit.SameList(r.techniques, ev.Techniques) && audit.SameList(r.hunt, ev.Hunt) &&
		audit.SameList(r.sigma, ev.Sigma) && r.put(w)
}

// remember keeps the run written for ev since m.
func (r *ruleRun) remember(w *Writer, ev *audit.Event, m mark) {
	r.keep(w, m)
	r.techniques, r.hunt, r.sigma = ev.Techniques, ev.Hunt, ev.Sigma
}

// Hits writes the member name: [{"list","label","hash"}...] (nothing when
// hits is empty), and returns escaped with the path name+".label" added
// once for each label written in the escaped form (a label comes from a
// list file, whose bytes may be anything; list names and hashes are
// checked text).
func Hits(w *Writer, name string, hits []audit.ListHit, escaped []string) []string {
	if len(hits) == 0 {
		return escaped
	}
	w.Key(name)
	w.OpenArray()
	for _, h := range hits {
		w.Open()
		w.Key("list")
		w.Str(h.List)
		if h.Label != "" {
			w.Key("label")
			if !w.Str(h.Label) {
				escaped = append(escaped, name+".label")
			}
		}
		w.Key("hash")
		w.Str(h.Hash)
		w.Close()
	}
	w.CloseArray()
	return escaped
}

// renderCache remembers the values rendered for the latest lists of
// enrichments (threat techniques, Sigma hits), keyed by the format, a
// variant byte (what the value function writes) and the lists' ids. A hit
// is checked element by element against the list it was rendered from, so
// the output is exactly what rendering writes; the check is cheap because
// equal strings from the embedded catalog or from one loaded rule share
// their bytes (Go compares their pointers first). It holds at most
// maxThreatCache lists, of every format and variant together, so that
// writers of both formats can share one cache.
//
// Before all that, a list that is the same slice (audit.SameList) as the
// last one written, in the same format and variant, gets the last value:
// the enrichers hand the events with the same hits one shared list, whose
// elements audit.Enrichment's contract keeps unchanged.
type renderCache[T any] struct {
	m    map[string]rendered[T]
	key  []byte
	last struct {
		src []T     // the list as given (not a copy: its identity counts)
		fv  [2]byte // format, variant
		doc []byte  // nil until a list was written
	}
}

type rendered[T any] struct {
	xs  []T
	doc []byte // the value of the member
}

// maxThreatCache bounds the lists a render cache holds.
const maxThreatCache = 256

// write writes the member name for xs: the cached value when xs is the
// same list as one rendered before in w's format and the same variant
// (same reports equal elements), else the value value renders, which it
// remembers.
func (c *renderCache[T]) write(w *Writer, name string, variant byte, xs []T, id func(*T) string, same func(a, b T) bool, value func(*Writer, []T)) {
	fv := [2]byte{byte(w.Format()), variant}
	w.Key(name)
	if l := &c.last; l.doc != nil && l.fv == fv && audit.SameList(l.src, xs) {
		w.Raw(l.doc)
		return
	}
	c.key = append(c.key[:0], fv[:]...)
	for i := range xs {
		c.key = append(c.key, id(&xs[i])...)
		c.key = append(c.key, ',')
	}
	r, ok := c.m[string(c.key)]
	if ok && slices.EqualFunc(r.xs, xs, same) {
		w.Raw(r.doc)
	} else {
		start := len(w.B)
		value(w, xs)
		if c.m == nil || len(c.m) >= maxThreatCache {
			c.m = make(map[string]rendered[T])
		}
		r = rendered[T]{xs: slices.Clone(xs), doc: slices.Clone(w.B[start:])}
		c.m[string(c.key)] = r
	}
	c.last.src, c.last.fv, c.last.doc = xs, fv, r.doc
}

// ThreatCache writes the member "threat" (the ECS threat.* columns of a
// list of techniques, names and reference URLs only when details is set),
// rendering each list once and appending the rendered bytes for the next
// events with the same list. The zero value is ready; a ThreatCache is
// not safe for concurrent use.
type ThreatCache struct{ c renderCache[audit.Technique] }

// Write writes the member "threat" for ts.
func (c *ThreatCache) Write(w *Writer, ts []audit.Technique, details bool) {
	cols := 1
	if details {
		cols = 3
	}
	c.c.write(w, "threat", byte(cols), ts, func(t *audit.Technique) string { return t.ID }, sameTechnique,
		func(w *Writer, ts []audit.Technique) { threatValue(w, ts, cols) })
}

// sameTechnique reports whether a and b render the same threat entries
// (Source is not rendered).
func sameTechnique(a, b audit.Technique) bool {
	return a.ID == b.ID && a.Name == b.Name && a.Reference == b.Reference &&
		a.ParentID == b.ParentID && a.Parent == b.Parent && slices.Equal(a.Tactics, b.Tactics)
}

// threatValue writes the ECS threat.* object. ECS keeps parallel arrays:
// technique.* holds the techniques (the parent of a sub-technique),
// technique.subtechnique.* the sub-techniques, tactic.* the tactics; each
// id appears once, in first-seen order. cols is the number of columns
// written: 1 ids, 2 ids and names, 3 ids, names and reference URLs. The
// columns are built in stack arrays, so a usual event allocates nothing
// here.
func threatValue(w *Writer, ts []audit.Technique, cols int) {
	var techBuf, subBuf, tacBuf [16]threatEntry
	tech, sub, tac := techBuf[:0], subBuf[:0], tacBuf[:0]
	for i := range ts {
		t := &ts[i]
		switch {
		case t.ParentID != "":
			tech = addEntry(tech, t.ParentID, t.Parent, "")
			sub = addEntry(sub, t.ID, t.Name, t.Reference)
		case t.ID != "": // "": tactics only (a Sigma rule's tactic tags)
			tech = addEntry(tech, t.ID, t.Name, t.Reference)
		}
		for _, ta := range t.Tactics {
			tac = addEntry(tac, ta.ID, ta.Name, ta.Reference)
		}
	}
	w.Open()
	w.Key("framework")
	w.Str("MITRE ATT&CK")
	w.Key("technique")
	w.Open()
	entries(w, tech, cols)
	if len(sub) > 0 {
		w.Key("subtechnique")
		w.Open()
		entries(w, sub, cols)
		w.Close()
	}
	w.Close()
	if len(tac) > 0 {
		w.Key("tactic")
		w.Open()
		entries(w, tac, cols)
		w.Close()
	}
	w.Close()
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

// entries writes the first cols of "id":[...], "name":[...] and
// "reference":[...]. An empty url means the technique page of the id.
func entries(w *Writer, es []threatEntry, cols int) {
	for part, key := range [...]string{"id", "name", "reference"} {
		if part == cols {
			break
		}
		w.Key(key)
		w.OpenArray()
		for i := range es {
			switch e := &es[i]; {
			case part == 0:
				w.Str(e.id)
			case part == 1:
				w.Str(e.name)
			case e.url == "":
				var buf [96]byte
				w.Plain(techniqueURL(buf[:0], e.id)) // ids are plain ASCII
			default:
				w.Str(e.url)
			}
		}
		w.CloseArray()
	}
}

// techniqueURL appends the ATT&CK page of a technique id (T1059 or
// T1059.004).
func techniqueURL(b []byte, id string) []byte {
	b = append(b, "https://attack.mitre.org/techniques/"...)
	for i := 0; i < len(id); i++ {
		if id[i] == '.' {
			b = append(b, id[:i]...)
			b = append(b, '/')
			b = append(b, id[i+1:]...)
			return append(b, '/')
		}
	}
	b = append(b, id...)
	return append(b, '/')
}

// VirusTotal writes the member "virustotal"; paths of values written in
// the escaped form (relative to the virustotal object's parent) are
// appended to escaped.
func VirusTotal(w *Writer, v *audit.VTResult, escaped []string) []string {
	w.Key("virustotal")
	w.Open()
	w.Key("status")
	w.Str(v.Status)
	w.OptStr("reason", v.Reason)
	w.OptStr("hash", v.Hash)
	if d := v.VTVerdict; d != nil {
		for _, kv := range [...]struct {
			k string
			v int64
		}{{"malicious", d.Malicious}, {"suspicious", d.Suspicious}, {"harmless", d.Harmless},
			{"undetected", d.Undetected}, {"reputation", d.Reputation},
			{"first_submission_date", d.FirstSubmission}, {"last_analysis_date", d.LastAnalysis}} {
			w.Key(kv.k)
			w.Int(kv.v)
		}
		for _, kv := range [...][2]string{{"threat_label", d.ThreatLabel}, {"meaningful_name", d.MeaningfulName}, {"link", d.Link}} {
			if kv[1] == "" {
				continue
			}
			w.Key(kv[0])
			if !w.Str(kv[1]) {
				escaped = append(escaped, "virustotal."+kv[0])
			}
		}
	}
	w.Close()
	return escaped
}

// Hunt writes the member "hunt" when a hunting rule matched, each rule's
// tags only when tags is set.
func Hunt(w *Writer, hunt []audit.HuntHit, tags bool) {
	if len(hunt) == 0 {
		return
	}
	w.Key("hunt")
	w.OpenArray()
	for _, h := range hunt {
		w.Open()
		w.Key("rule")
		w.Str(h.Rule)
		w.Key("severity")
		w.Int(int64(h.Severity))
		if tags && len(h.Tags) > 0 {
			w.Key("tags")
			w.Strs(h.Tags)
		}
		w.Close()
	}
	w.CloseArray()
}

// SigmaCache writes the member "sigma" (when a Sigma rule matched) through a render
// cache: a rule's hit holds the rule's own strings, event after event, so
// a match appends the bytes rendered for the first event with the same
// rules. The zero value is ready; a SigmaCache is not safe for concurrent
// use.
type SigmaCache struct{ c renderCache[audit.SigmaHit] }

// Write writes the member "sigma" when a Sigma rule matched.
func (c *SigmaCache) Write(w *Writer, sigma []audit.SigmaHit) {
	if len(sigma) == 0 {
		return
	}
	c.c.write(w, "sigma", 0, sigma, func(h *audit.SigmaHit) string { return h.ID }, sameSigmaHit, sigmaValue)
}

// sameSigmaHit reports whether a and b render the same sigma entry.
func sameSigmaHit(a, b audit.SigmaHit) bool {
	return a.ID == b.ID && a.Title == b.Title && a.Level == b.Level && a.Author == b.Author && slices.Equal(a.Tags, b.Tags)
}

// sigmaValue writes the value of "sigma": one object per hit.
func sigmaValue(w *Writer, sigma []audit.SigmaHit) {
	w.OpenArray()
	for _, h := range sigma {
		w.Open()
		w.Key("id")
		w.Str(h.ID)
		w.Key("title")
		w.Str(h.Title)
		w.OptStr("level", h.Level)
		w.OptStr("author", h.Author)
		if len(h.Tags) > 0 {
			w.Key("tags")
			w.Strs(h.Tags)
		}
		w.Close()
	}
	w.CloseArray()
}
