package imatest

import (
	"regexp"
	"strings"
)

// rawRecord is one line of auditd's string format, split just enough for
// the checks of this test: the record type, the event serial, the raw
// field values (quotes kept) and the ENRICHED interpretations. The plugin
// has its own parser; this one exists so that the kernel's side of each
// scenario is checked independently of it.
type rawRecord struct {
	Type   string
	Serial string
	Fields map[string]string
	Interp map[string]string
	Line   string
}

var (
	rawHeader = regexp.MustCompile(`^type=(\S+) msg=audit\(\d+\.\d+:(\d+)\): ?`)
	rawField  = regexp.MustCompile(`([A-Za-z0-9_-]+)=("[^"]*"|'[^']*'|\S*)`)
)

// parseRaw splits an audit.log (or the plugin's raw input stream) into
// records; lines that are not audit records are skipped.
func parseRaw(s string) []rawRecord {
	var recs []rawRecord
	for _, line := range strings.Split(s, "\n") {
		m := rawHeader.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		body, interp, _ := strings.Cut(line[len(m[0]):], "\x1d")
		r := rawRecord{Type: m[1], Serial: m[2], Fields: map[string]string{}, Interp: map[string]string{}, Line: line}
		for _, f := range rawField.FindAllStringSubmatch(body, -1) {
			if _, dup := r.Fields[f[1]]; !dup {
				r.Fields[f[1]] = f[2]
			}
		}
		for _, f := range rawField.FindAllStringSubmatch(interp, -1) {
			r.Interp[f[1]] = strings.Trim(f[2], `"`)
		}
		recs = append(recs, r)
	}
	return recs
}

// rawEvent is the records of one kernel event (one serial).
type rawEvent []rawRecord

// rawEventWithHash returns the event holding an INTEGRITY_RULE record whose
// hash is sha256:hex and whose file= field is file (as logged: quoted, or
// hex). Kernel serials are unique within one boot; auditd's own records
// (DAEMON_*) use another serial space and never carry hashes.
func rawEventWithHash(recs []rawRecord, hex, file string) rawEvent {
	serial := ""
	for _, r := range recs {
		if r.Type == "INTEGRITY_RULE" && r.Fields["hash"] == `"sha256:`+hex+`"` && r.Fields["file"] == file {
			serial = r.Serial
			break
		}
	}
	if serial == "" {
		return nil
	}
	var ev rawEvent
	for _, r := range recs {
		if r.Serial == serial && r.Type != "DAEMON_START" && r.Type != "DAEMON_END" {
			ev = append(ev, r)
		}
	}
	return ev
}

// types lists the record types of the event in arrival order.
func (ev rawEvent) types() []string {
	var t []string
	for _, r := range ev {
		t = append(t, r.Type)
	}
	return t
}

// first returns the first record of type typ.
func (ev rawEvent) first(typ string) (rawRecord, bool) {
	for _, r := range ev {
		if r.Type == typ {
			return r, true
		}
	}
	return rawRecord{}, false
}

// hashes lists the raw hash= values of the event's INTEGRITY_RULE records.
func (ev rawEvent) hashes() []string {
	var h []string
	for _, r := range ev {
		if r.Type == "INTEGRITY_RULE" {
			h = append(h, strings.TrimPrefix(strings.Trim(r.Fields["hash"], `"`), "sha256:"))
		}
	}
	return h
}
