// Package ecs encodes events as the "ecs" document profile: the summary and
// the enrichment of an event in Elastic Common Schema (ECS 9.x) names, with
// what ECS has no field for under the one custom namespace audisp_enrich.*.
// The records themselves are left out (they are in event.original when
// Options.Original is set, without the stamp that event.id holds; Rebuild
// gives the lines back), which makes the document about a quarter of the size of the full,
// lossless one. docs/schema/ecs.schema.json is its JSON
// Schema, docs/schema.md describes every field.
//
// Encode is a pure function of the event and the options: it reads the
// event and writes nothing but dst, so it is safe to call from several
// goroutines on different events (or on one event nobody modifies). The
// threat and sigma blocks are rendered through caches (encode.ThreatCache,
// encode.SigmaCache) held in pooled per-call scratch: the output is the
// same as rendering them each time.
package ecs

import (
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/sinks/encode"
)

// SchemaVersion is the version of the ecs profile
// (docs/schema/ecs.schema.json), written as audisp_enrich.schema_version.
// It changes only on incompatible changes.
const SchemaVersion = 2

// ECSVersion is the ECS version the profile follows (ecs.version).
const ECSVersion = "9.5.0"

// Options select what the profile writes.
type Options struct {
	// Original adds event.original: the event's audit records one per
	// line, each without the event's stamp "msg=audit(SEC.MSEC:SERIAL): "
	// (the stamp part of event.id) when it carries exactly that one (see
	// appendOriginal). The document is then lossless: Rebuild gives back
	// the lines as received from event.id and event.original.
	Original bool
	// References adds the ATT&CK catalog text of each technique and
	// tactic: threat.*.name and threat.*.reference (the page URLs). By
	// default only the ids are written: the rest follows from them (the
	// index template or the SIEM can look them up).
	References bool
	// Host is host.name when the records carry no node= name (the local
	// host name); empty leaves host.name out for such events.
	Host string
}

// scratch is per-call working space, pooled so that Encode allocates
// nothing in the steady state.
type scratch struct {
	sum  audit.Summary
	esc  []string
	line []byte
	seen []string
	// The @timestamp up to the milliseconds ("2006-01-02T15:04:05.") of
	// second tsSec: events come in bursts within one second.
	tsSec    int64
	tsPrefix []byte
	// The rendered threat and sigma blocks of recent events (lost with
	// the scratch when the pool drops it, and then rendered again).
	threat encode.ThreatCache
	sigma  encode.SigmaCache
}

var pool = sync.Pool{New: func() any { return new(scratch) }}

// Encode appends the ecs document for ev as JSON, followed by a newline,
// to dst.
func Encode(dst []byte, ev *audit.Event, opts Options) []byte {
	var w encode.Writer
	w.Reset(encode.JSON, dst)
	Write(&w, ev, opts)
	w.End()
	return w.B
}

// Write writes the ecs document for ev to ew, in its format (JSON or
// msgpack). The output is valid JSON (or msgpack) and valid UTF-8;
// strings that are not valid UTF-8 are written in the reversible escaped
// form of the full document and their paths listed in
// audisp_enrich.escaped.
func Write(ew *encode.Writer, ev *audit.Event, opts Options) {
	sc := pool.Get().(*scratch)
	defer pool.Put(sc)
	write(ew, ev, opts, sc)
}

// write is Write with the scratch sc.
func write(ew *encode.Writer, ev *audit.Event, opts Options, sc *scratch) {
	s := ev.Summary
	if s == nil {
		audit.Summarize(ev, &sc.sum)
		s = &sc.sum
	}
	w := writer{Writer: ew, esc: sc.esc[:0]}
	w.Open()
	w.Key("@timestamp")
	var ts [40]byte
	w.Plain(sc.timestamp(ts[:0], ev.ID))
	w.open("ecs")
	w.str("version", ECSVersion, "")
	w.close()

	w.event(ev, s, opts, sc)
	host := ev.ID.Node
	if host == "" {
		host = opts.Host
	}
	if host != "" {
		w.open("host")
		w.str("name", host, "host.name")
		w.close()
	}
	w.process(ev, s)
	w.processContext(ev)
	w.user(s)
	w.file(s)
	sc.seen = w.related(ev, s, sc.seen[:0])
	if len(ev.Techniques) > 0 {
		sc.threat.Write(w.Writer, ev.Techniques, opts.References)
	}
	w.tags(ev, s)
	w.own(ev, s, sc)
	w.Close()
	clear(sc.esc[:cap(sc.esc)])
	sc.esc = w.esc[:0]
}

// timestamp appends id's time as RFC 3339 in UTC with milliseconds
// ("2006-01-02T15:04:05.000Z"), formatting the part up to the second
// only when the second changes.
func (sc *scratch) timestamp(b []byte, id audit.EventID) []byte {
	if id.Msec >= 1000 { // not from the parser; let time normalise it
		return id.Time().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	}
	if sc.tsPrefix == nil || sc.tsSec != id.Sec {
		sc.tsSec = id.Sec
		sc.tsPrefix = time.Unix(id.Sec, 0).UTC().AppendFormat(sc.tsPrefix[:0], "2006-01-02T15:04:05.")
	}
	b = append(b, sc.tsPrefix...)
	return append(b, byte('0'+id.Msec/100), byte('0'+id.Msec/10%10), byte('0'+id.Msec%10), 'Z')
}

// writer writes the members of the profile to the shared Writer,
// keeping track of the paths of escaped strings.
type writer struct {
	*encode.Writer
	esc []string
}

func (w *writer) open(k string) {
	w.Key(k)
	w.Open()
}

func (w *writer) close() { w.Close() }

// value writes s as a string, remembering path when s is escaped.
func (w *writer) value(s, path string) {
	if !w.Str(s) {
		w.esc = append(w.esc, path)
	}
}

// str writes k:v unless v is empty.
func (w *writer) str(k, v, path string) {
	if v != "" {
		w.Key(k)
		w.value(v, path)
	}
}

func (w *writer) int(k string, v int64) {
	w.Key(k)
	w.Int(v)
}

// num writes k:v for a decimal string v that is a valid JSON integer.
func (w *writer) num(k, v string) {
	if encode.IsJSONInt(v) {
		w.Key(k)
		w.Digits(v)
	}
}

func (w *writer) strs(k string, vs []string, path string) {
	w.Key(k)
	w.OpenArray()
	for _, v := range vs {
		w.value(v, path)
	}
	w.CloseArray()
}

func (w *writer) bool(k string, v bool) {
	if v {
		w.Key(k)
		w.Bool(true)
	}
}

// alert reports whether an audit event or a verdict document is an alert (ECS event.kind
// "alert"): a hunting rule or a blocklist matched, or a Sigma rule whose
// level gives a severity (low and above; hunting rules always have one).
func alert(ev *audit.Event) bool {
	if len(ev.Hunt) > 0 || len(ev.Blocklist) > 0 {
		return true
	}
	for _, h := range ev.Sigma {
		if sev, _ := audit.SigmaSeverity(h.Level); sev > 0 {
			return true
		}
	}
	return false
}

// event writes event.*: kind, category, type, action, outcome, id,
// severity, module and (with opts.Original) original.
func (w *writer) event(ev *audit.Event, s *audit.Summary, opts Options, sc *scratch) {
	w.open("event")
	kind := "event"
	switch {
	case ev.Kind == audit.KindAlert:
		kind = "pipeline_error"
	case alert(ev): // a verdict document too, when a verdict rule matched
		kind = "alert"
	case ev.Kind == audit.KindVerdict:
		kind = "enrichment"
	}
	w.str("kind", kind, "")
	if cat, typ := category(ev, s); cat != "" {
		w.strs("category", []string{cat}, "")
		w.strs("type", []string{typ}, "")
	}
	w.Key("action")
	switch {
	case ev.Kind != audit.KindAudit:
		w.value(ev.Kind.String(), "")
	case s.Syscall != "":
		w.value(s.Syscall, "event.action")
	case len(ev.Records) > 0:
		w.value(strings.ToLower(ev.Records[0].CanonicalType()), "event.action")
	default:
		w.value("audit", "")
	}
	w.str("outcome", s.Outcome, "")
	w.Key("id")
	sc.line = ev.ID.Append(sc.line[:0])
	if plain(sc.line) {
		w.Plain(sc.line)
	} else {
		w.value(ev.ID.String(), "event.id")
	}
	if ev.Severity > 0 {
		w.int("severity", int64(ev.Severity))
	}
	if opts.Original && len(ev.Records) > 0 {
		// sc.line holds event.id's text; event.original is appended after
		// it, which leaves sc.line[:n] (and id, which points there) as is.
		n := len(sc.line)
		id := unsafe.String(unsafe.SliceData(sc.line), n)
		sc.line = appendOriginal(sc.line, idStamp(id), ev)
		w.Key("original")
		// sc.line is not touched until value returns: no copy needed.
		w.value(unsafe.String(unsafe.SliceData(sc.line[n:]), len(sc.line)-n), "event.original")
	}
	w.close()
}

// stampPrefix starts the stamp of every audit line.
const stampPrefix = "msg=audit("

// appendOriginal appends event.original to b: the event's records one per
// line, in arrival order, each as received but without the event's stamp
// "msg=audit(" + part + "): " (part from idStamp) when it carries exactly
// that stamp right after its header (audit.HeaderLen) and the text after it does
// not itself start with "msg=audit(". Any other line, and every line when
// part is "", is kept as received. Rebuild is the inverse.
func appendOriginal(b []byte, part string, ev *audit.Event) []byte {
	for i, r := range ev.Records {
		if i > 0 {
			b = append(b, '\n')
		}
		l := r.Line
		if h, n := stampAt(l, part); n > 0 {
			b = append(b, l[:h]...)
			l = l[h+n:]
		}
		b = append(b, l...)
	}
	return b
}

// stampAt returns the length h of l's header (audit.HeaderLen) and the
// length n of the stamp "msg=audit(" + part + "): " when l has exactly
// that stamp right after its header and the text after it does not start
// with "msg=audit(" again; else n is 0 (always when part is "").
func stampAt(l, part string) (h, n int) {
	h = audit.HeaderLen(l)
	if part == "" || h < 0 || !strings.HasPrefix(l[h:], stampPrefix) {
		return h, 0
	}
	rest := l[h+len(stampPrefix):]
	if !strings.HasPrefix(rest, part) || !strings.HasPrefix(rest[len(part):], "): ") ||
		strings.HasPrefix(rest[len(part)+3:], stampPrefix) {
		return h, 0
	}
	return h, len(stampPrefix) + len(part) + 3
}

// Rebuild returns the audit lines that event.original holds, as auditd
// wrote them. id is the document's event.id and original its
// event.original, both JSON-decoded; in original each \xHH is turned back
// into its byte first when audisp_enrich.escaped lists event.original (id
// may be left in its \xHH form: only its digits are used). A line with
// "msg=audit(" right after its header is as received; every other line
// gets the event's stamp, "msg=audit(" + the stamp part of id (idStamp) +
// "): ", back right after its header. When id gives no stamp part every
// line is as received.
func Rebuild(id, original string) []string {
	lines := strings.Split(original, "\n")
	part := idStamp(id)
	if part == "" {
		return lines
	}
	st := stampPrefix + part + "): "
	for i, l := range lines {
		if h := audit.HeaderLen(l); h >= 0 && !strings.HasPrefix(l[h:], stampPrefix) {
			lines[i] = l[:h] + st + l[h:]
		}
	}
	return lines
}

// idStamp returns the stamp part "SEC.MSEC:SERIAL" of an event.id
// "NODE:SEC.MSEC:SERIAL": the text after its second-to-last colon (NODE
// may hold colons), when that text is decimal digits, a dot, exactly three
// digits, a colon and digits; "" otherwise (an id whose SEC overflowed
// into a negative number, or that is not an event.id at all).
func idStamp(id string) string {
	j := strings.LastIndexByte(id, ':')
	if j < 0 {
		return ""
	}
	i := strings.LastIndexByte(id[:j], ':')
	if i < 0 {
		return ""
	}
	sec, msec, ok := strings.Cut(id[i+1:j], ".")
	if !ok || !digits(sec) || len(msec) != 3 || !digits(msec) || !digits(id[j+1:]) {
		return ""
	}
	return id[i+1:]
}

// digits reports whether s is one or more decimal digits.
func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// plain reports whether b needs no JSON escaping.
func plain(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// category returns event.category and event.type for the kinds of audit
// event ECS has categories for, or "" when it has none.
func category(ev *audit.Event, s *audit.Summary) (cat, typ string) {
	if ev.Kind != audit.KindAudit {
		return "", ""
	}
	if s.Exec {
		return "process", "start"
	}
	for _, r := range ev.Records {
		switch r.TypeNum {
		case audit.TypeIntegrityRule:
			return "file", "info"
		case 1100, 1112: // USER_AUTH, USER_LOGIN
			return "authentication", "info"
		case 1305: // CONFIG_CHANGE
			return "configuration", "change"
		}
	}
	return "", ""
}

// process writes process.*: pid, executable, name, args (argv of the
// exec, else the PROCTITLE argv), args_count, working_directory and
// parent.* (pid from the record, executable, name and args from the
// process table; name is the comm when the executable is unknown).
func (w *writer) process(ev *audit.Event, s *audit.Summary) {
	args := s.Args
	if len(args) == 0 {
		args = s.Title
	}
	name := audit.ProcessName(s)
	p := ev.Parent
	ppid := encode.IsJSONInt(s.PPID)
	if !encode.IsJSONInt(s.PID) && s.Exe == "" && name == "" && len(args) == 0 && s.Cwd == "" && p == nil && !ppid {
		// nothing to write (a pid that is not a number is left out)
		return
	}
	w.open("process")
	w.num("pid", s.PID)
	w.str("executable", s.Exe, "process.executable")
	w.str("name", name, "process.name")
	if len(args) > 0 {
		w.strs("args", args, "process.args")
		w.int("args_count", int64(len(args)))
	}
	w.str("working_directory", s.Cwd, "process.working_directory")
	if ppid || p != nil {
		w.open("parent")
		if ppid {
			w.num("pid", s.PPID)
		} else {
			w.int("pid", int64(p.PID))
		}
		if p != nil {
			w.str("executable", p.Executable, "process.parent.executable")
			w.str("name", p.Name(), "process.parent.name")
			if len(p.Args) > 0 {
				w.strs("args", p.Args, "process.parent.args")
			}
			w.commandLine(p.Args, "process.parent.command_line")
		}
		w.close()
	}
	w.close()
}

// user writes user.id and user.name (the uid) and user.effective.* when
// the euid differs. The login uid (auid) has no ECS field: it goes to
// audisp_enrich.audit_user.
func (w *writer) user(s *audit.Summary) {
	if s.UID == "" {
		return
	}
	w.open("user")
	w.str("id", s.UID, "user.id")
	w.str("name", s.UName, "user.name")
	if s.EUID != "" && s.EUID != s.UID {
		w.open("effective")
		w.str("id", s.EUID, "user.effective.id")
		w.str("name", s.EUName, "user.effective.name")
		w.close()
	}
	w.close()
}

// file writes file.path and file.hash.* of the event's file (the first
// integrity record of an exec, else the first PATH record). A path equal
// to process.executable (the file an exec ran) is not written twice.
func (w *writer) file(s *audit.Summary) {
	path := s.FilePath
	if path == s.Exe {
		path = ""
	}
	if path == "" && s.Hashes == [3]string{} && s.Sha512 == "" {
		return
	}
	w.open("file")
	w.str("path", path, "file.path")
	if s.Hashes != [3]string{} || s.Sha512 != "" {
		w.open("hash")
		w.str("sha256", s.Hashes[0], "")
		w.str("sha1", s.Hashes[1], "")
		w.str("md5", s.Hashes[2], "")
		w.str("sha512", s.Sha512, "")
		w.close()
	}
	w.close()
}

// related writes related.hash (every digest the event carries, each
// once) and related.user (every user name seen, or the id when the name
// is unknown). seen is scratch space, returned for reuse.
func (w *writer) related(ev *audit.Event, s *audit.Summary, seen []string) []string {
	hashes := seen
	for _, h := range s.Hashes {
		hashes = addOnce(hashes, h)
	}
	hashes = addOnce(hashes, s.Sha512)
	for _, h := range ev.Hashes {
		hashes = addOnce(hashes, h.Hex)
	}
	if ev.VirusTotal != nil {
		hashes = addOnce(hashes, ev.VirusTotal.Hash)
	}
	users := hashes[len(hashes):]
	for i, u := range [...][2]string{{s.UName, s.UID}, {s.EUName, s.EUID}, {s.AUName, s.AUID}} {
		switch {
		case u[1] == "" || audit.IsUnsetID(u[1]) || i == 1 && s.EUID == s.UID:
		case u[0] != "":
			users = addOnce(users, u[0])
		default:
			users = addOnce(users, u[1])
		}
	}
	if len(hashes) == 0 && len(users) == 0 {
		return hashes
	}
	w.open("related")
	if len(hashes) > 0 {
		w.strs("hash", hashes, "related.hash")
	}
	if len(users) > 0 {
		w.strs("user", users, "related.user")
	}
	w.close()
	return hashes[:0]
}

func addOnce(xs []string, v string) []string {
	if v == "" {
		return xs
	}
	for _, x := range xs {
		if x == v {
			return xs
		}
	}
	return append(xs, v)
}

// tags writes the rule keys followed by the other tags, each once,
// without the tags "hunt:RULE" of the hunting rules that matched (their
// names are in audisp_enrich.hunt).
func (w *writer) tags(ev *audit.Event, s *audit.Summary) {
	open := false
	for i, k := range s.Keys {
		if !containsBefore(s.Keys, i, k) {
			open = w.openTags(open)
			w.value(k, "tags")
		}
	}
	for _, t := range ev.Tags {
		if !containsBefore(s.Keys, len(s.Keys), t) && !huntTag(ev.Hunt, t) {
			open = w.openTags(open)
			w.value(t, "tags")
		}
	}
	if open {
		w.CloseArray()
	}
}

// openTags starts the tags array unless open says it is started.
func (w *writer) openTags(open bool) bool {
	if !open {
		w.Key("tags")
		w.OpenArray()
	}
	return true
}

// huntTag reports whether t is the tag "hunt:RULE" of one of the hits.
func huntTag(hits []audit.HuntHit, t string) bool {
	if rule, ok := strings.CutPrefix(t, "hunt:"); ok {
		for _, h := range hits {
			if h.Rule == rule {
				return true
			}
		}
	}
	return false
}

func containsBefore(xs []string, n int, v string) bool {
	for _, x := range xs[:n] {
		if x == v {
			return true
		}
	}
	return false
}

// own writes audisp_enrich.*: the facts ECS has no field for.
func (w *writer) own(ev *audit.Event, s *audit.Summary, sc *scratch) {
	w.open("audisp_enrich")
	w.int("schema_version", SchemaVersion)
	w.bool("timed_out", ev.TimedOut)
	w.bool("evicted", ev.Evicted)
	w.bool("late", ev.Late)
	if s.AUID != "" && !audit.IsUnsetID(s.AUID) {
		w.open("audit_user")
		w.str("id", s.AUID, "audisp_enrich.audit_user.id")
		w.str("name", s.AUName, "audisp_enrich.audit_user.name")
		w.close()
	}
	if len(ev.Hashes) > 1 {
		w.Key("hashes")
		w.OpenArray()
		for _, h := range ev.Hashes {
			w.Open()
			w.str("path", h.Path, "audisp_enrich.hashes.path")
			w.str("algo", h.Algo, "")
			w.str("hex", h.Hex, "")
			w.Close()
		}
		w.CloseArray()
	}
	w.ownProcessContext(ev)
	encode.Hunt(w.Writer, ev.Hunt, false) // the rules' tags are in tags
	sc.sigma.Write(w.Writer, ev.Sigma)
	// From here to the loop below, paths are the full document's (the
	// shared writers'); the loop puts them under audisp_enrich.
	mark := len(w.esc)
	w.esc = encode.Hits(w.Writer, "blocklist", ev.Blocklist, w.esc)
	w.esc = encode.Hits(w.Writer, "allowlisted", ev.Allowlisted, w.esc)
	if p := ev.Package; p != nil {
		w.open("package")
		w.str("status", p.Status, "")
		w.str("manager", p.Manager, "")
		w.str("name", p.Name, "package.name")
		w.str("version", p.Version, "package.version")
		w.str("original_path", p.OriginalPath, "package.original_path")
		w.close()
	}
	if ev.VirusTotal != nil {
		w.esc = encode.VirusTotal(w.Writer, ev.VirusTotal, w.esc)
	}
	for i := mark; i < len(w.esc); i++ {
		w.esc[i] = "audisp_enrich." + w.esc[i]
	}
	if len(ev.Related) > 0 {
		w.strs("related_events", ev.Related, "audisp_enrich.related_events")
	}
	if a := ev.Alert; a != nil {
		w.open("alert")
		w.str("sink", a.Sink, "audisp_enrich.alert.sink")
		w.str("reason", a.Reason, "")
		w.Key("count")
		w.Uint(a.Count)
		w.close()
	}
	if len(ev.Warnings) > 0 {
		w.strs("warnings", ev.Warnings, "audisp_enrich.warnings")
	}
	if len(w.esc) > 0 {
		// Paths repeat for arrays: list each once.
		esc := w.esc
		w.Key("escaped")
		w.OpenArray()
		for i, p := range esc {
			if !containsBefore(esc, i, p) {
				w.Str(p)
			}
		}
		w.CloseArray()
	}
	w.close()
}
