package encode

// The helpers below let other JSON writers (the GELF sink's envelope, the
// ecs profile) follow the rules of the documents, so that every JSON text
// escapes strings and writes numbers by one rule.

// AppendJSONString appends s as a JSON string. ok is false when s was not
// valid UTF-8: it was then written in the reversible escaped form that
// docs/schema.md describes (backslash as \x5c, bad bytes as \xHH).
func AppendJSONString(b []byte, s string) (out []byte, ok bool) { return appendStrOK(b, s) }

// IsJSONInt reports whether s is a decimal integer that can be written
// as a JSON number as it is (no sign, no leading zero, at most 18 digits).
func IsJSONInt(s string) bool { return isDigits(s) }
