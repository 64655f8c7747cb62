// Package encode holds the encoders of the output documents: JSON and
// msgpack of the full (lossless) profile (Full), audit text (AuditText),
// and the Writer that JSON and msgpack implement, which the ecs profile
// (sinks/ecs) writes to as well. The output stage (sinks/output) chooses
// one encoder per sink setting.
//
// One walk, two formats: a profile walks the event model once and calls
// the Writer (Key, Str, Int, Open, Close, ...); the Writer's format decides
// the bytes. A field added to a walk is therefore in both formats, and a
// msgpack document decodes to the same data as the JSON document of the
// same event. To add a model field to the full profile, write it in
// Full.write (json.go: identity and records; summary) or Full.enrichment
// (json_enrich.go: what enrichers add) with the Writer's calls, then add
// it to docs/schema/event.schema.json and docs/schema.md.
//
// The encoders reuse scratch space and allocate nothing per document in
// the steady state; none is safe for concurrent use (each enrichment
// worker owns its own).
package encode
