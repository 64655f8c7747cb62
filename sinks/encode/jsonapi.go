package encode

import "github.com/audisp-enrich/audisp-enrich/plugin/audit"

// The helpers below let other encoders of the event model (the ECS
// profile) write JSON exactly as the full document does, so that both
// profiles escape strings by one rule.

// AppendJSONString appends s as a JSON string. ok is false when s was not
// valid UTF-8: it was then written in the reversible escaped form that
// docs/schema.md describes (backslash as \x5c, bad bytes as \xHH).
func AppendJSONString(b []byte, s string) (out []byte, ok bool) { return appendStrOK(b, s) }

// IsJSONInt reports whether s is a decimal integer that can be written
// as a JSON number as it is (no sign, no leading zero, at most 18 digits).
func IsJSONInt(s string) bool { return isDigits(s) }

// AppendThreat appends `,"threat":{...}`: the ECS threat.* columns of ts
// as the full document writes them, with the names and reference URLs
// only when details is set.
func AppendThreat(b []byte, ts []audit.Technique, details bool) []byte {
	if details {
		return appendThreat(b, ts, 3)
	}
	return appendThreat(b, ts, 1)
}

// AppendVirusTotal appends `,"virustotal":{...}` as the full document
// writes it; paths of values written in the escaped form (relative to the
// virustotal object's parent) are appended to escaped.
func AppendVirusTotal(b []byte, v *audit.VTResult, escaped []string) ([]byte, []string) {
	return appendVirusTotal(b, v, escaped)
}

// AppendHunt appends `,"hunt":[...]` (nothing when hunt is empty), with
// each rule's tags only when tags is set.
func AppendHunt(b []byte, hunt []audit.HuntHit, tags bool) []byte { return appendHunt(b, hunt, tags) }

// AppendHits appends `,"NAME":[{"list","label","hash"}...]` (nothing when
// hits is empty).
func AppendHits(b []byte, name string, hits []audit.ListHit) []byte { return appendHits(b, name, hits) }

// AppendSigma appends `,"sigma":[{"id","title","level","author","tags"}...]`
// (nothing when sigma is empty).
func AppendSigma(b []byte, sigma []audit.SigmaHit) []byte { return appendSigma(b, sigma) }
