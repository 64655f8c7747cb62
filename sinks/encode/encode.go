package encode

import (
	"fmt"
	"strings"

	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/sinks/remote"
)

// Encoder renders one document (an audit event, a verdict or an alert) in
// a sink's format, appending it to dst. Each enrichment worker owns its
// own Encoder, so an Encoder need not be safe for concurrent use; it may
// keep scratch space between calls. A nil or empty result means the
// document could not be encoded: the sinks that wanted it skip it (logged).
type Encoder interface {
	Append(dst []byte, ev *audit.Event) []byte
}

// AuditText renders an event as audit text lines, one per record
// with node= set (the local host name when the stream had none, so that
// the collector knows the origin). What enrichers found is appended as
// enrich_* fields: event-wide findings on the first SYSCALL record (or the
// first record), hash findings on the INTEGRITY_RULE record they belong to.
type AuditText struct{ Host string }

func (e AuditText) Append(b []byte, ev *audit.Event) []byte {
	node := ev.ID.Node
	if node == "" {
		node = e.Host
	}
	if ev.Kind != audit.KindAudit {
		// Verdicts and alerts have no records: send one user-space style line.
		b = append(b, remote.FormatRecordLine(node, fmt.Sprintf("type=USER msg=audit(%d.%03d:%d): msg='audisp-enrich %s'",
			ev.ID.Sec, ev.ID.Msec, ev.ID.Serial, ev.Kind), enrichFields(ev, -1))...)
		return append(b, '\n')
	}
	main := 0
	for i, r := range ev.Records {
		if r.TypeNum == audit.TypeSyscall {
			main = i
			break
		}
	}
	for i, r := range ev.Records {
		var extra [][2]string
		if i == main {
			extra = enrichFields(ev, -1)
		}
		if r.TypeNum == audit.TypeIntegrityRule {
			extra = append(extra, enrichFields(ev, i)...)
		}
		b = append(b, remote.FormatRecordLine(node, r.Line, extra)...)
		b = append(b, '\n')
	}
	return b
}

// enrichFields lists the enrich_* fields for the audit text form: the
// event-wide ones (rec < 0) or those of the hashes taken from record rec.
func enrichFields(ev *audit.Event, rec int) [][2]string {
	var out [][2]string
	add := func(k, v string) {
		if v != "" {
			out = append(out, [2]string{k, v})
		}
	}
	if rec < 0 {
		var ids []string
		for _, t := range ev.Techniques {
			if t.ID != "" { // "": tactics only
				ids = append(ids, t.ID)
			}
		}
		add("enrich_technique", strings.Join(ids, ","))
		var rules []string
		for _, h := range ev.Hunt {
			rules = append(rules, h.Rule)
		}
		add("enrich_hunt", strings.Join(rules, ","))
		if ev.Severity > 0 {
			add("enrich_severity", fmt.Sprint(ev.Severity))
		}
		if ev.Parent != nil {
			add("enrich_parent_exe", ev.Parent.Executable)
		}
		if len(ev.Related) > 0 {
			add("enrich_related", strings.Join(ev.Related, ","))
		}
		if ev.Alert != nil {
			add("enrich_alert", fmt.Sprintf("%s:%s:%d", ev.Alert.Sink, ev.Alert.Reason, ev.Alert.Count))
		}
		if ev.Kind == audit.KindAudit {
			return out
		}
	}
	for _, h := range ev.Hashes {
		if rec >= 0 && h.Record != rec {
			continue
		}
		add("enrich_hash", h.Algo+":"+h.Hex)
		for _, l := range ev.Blocklist {
			if l.Hash == h.Hex {
				add("enrich_blocklist", l.List+":"+l.Label)
			}
		}
	}
	if v := ev.VirusTotal; v != nil && (rec >= 0 || ev.Kind == audit.KindVerdict) {
		s := v.Status
		if v.VTVerdict != nil {
			s += fmt.Sprintf(":%d/%d", v.Malicious, v.Malicious+v.Suspicious+v.Harmless+v.Undetected)
		}
		add("enrich_vt", s)
	}
	return out
}
