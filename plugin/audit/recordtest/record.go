// Package recordtest builds audit records for tests of the enrichers, and
// events from log lines for their benchmarks (Feeder).
package recordtest

import "github.com/audisp-enrich/audisp-enrich/plugin/audit"

// Record builds a record of type typ from name/value pairs, as the parser
// would leave it for unquoted values: Raw and Value are the given value.
// Names starting with "@" go to the ENRICHED part without the "@".
func Record(typ string, kv ...string) *audit.Record {
	r := &audit.Record{Type: typ, TypeNum: audit.TypeNumber(typ), NestedFrom: -1}
	for i := 0; i+1 < len(kv); i += 2 {
		f := audit.Field{Name: kv[i], Raw: kv[i+1], Value: kv[i+1]}
		if f.Name != "" && f.Name[0] == '@' {
			f.Name = f.Name[1:]
			r.Interp = append(r.Interp, f)
			continue
		}
		r.Fields = append(r.Fields, f)
	}
	return r
}
