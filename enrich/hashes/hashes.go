// Package hashes takes file digests out of IMA integrity records and turns
// IMA tamper signals into tags.
//
// For every INTEGRITY_RULE record of an event it reads hash= with
// audit.ParseDigest (the one definition of a digest, which the summary's
// file.hash also uses: "algo:hex" or the legacy bare hex of old kernels,
// upper case normalised to lower) and the decoded file= value, and appends
// an audit.FileHash to Event.Hashes. A value ParseDigest refuses is counted
// in audisp_enrich_hashes_invalid_total and becomes a warning on the
// event. The blocklist and VirusTotal enrichers read Event.Hashes, so
// this enricher must run before them.
//
// Tamper signals become tags and raise Event.Severity:
//
//	INTEGRITY_PCR op=invalid_pcr cause=open_writers  tag ima:open_writers     severity 1 (low)
//	INTEGRITY_PCR op=invalid_pcr cause=ToMToU        tag ima:tomtou           severity 2 (medium)
//	INTEGRITY_DATA res=0                             tag ima:data_failure     severity 3 (high)
//	INTEGRITY_METADATA res=0                         tag ima:metadata_failure severity 3 (high)
//
// open_writers means a file was measured while someone held it open for
// writing (common for logs, harmless alone, but the measurement list no
// longer attests it); ToMToU means a measured file was opened for writing
// afterwards (time of measure, time of use), a sign the content may differ
// from the measured one. A res=0 appraisal record means the kernel refused
// a file whose content or metadata did not match its signature or stored
// hash: a tampered or unsigned file someone tried to use.
//
// The enricher has no configuration; it is switched on and off by the pool.
package hashes

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/audisp-enrich/audisp-enrich/enrich"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
)

// Severity levels assigned to tamper signals (see the package comment).
const (
	SeverityOpenWriters = 1
	SeverityToMToU      = 2
	SeverityDataFailure = 3
	SeverityMetaFailure = 3
)

const (
	tagOpenWriters = "ima:open_writers"
	tagToMToU      = "ima:tomtou"
	tagDataFailure = "ima:data_failure"
	tagMetaFailure = "ima:metadata_failure"
)

// Enricher fills Event.Hashes and the IMA tamper tags. It holds no state and
// is safe for concurrent use.
type Enricher struct {
	extracted, invalid *metrics.Counter
	tamper             map[string]*metrics.Counter
}

// New returns the hash enricher. Its counters are registered in reg (nil:
// metrics.Default); enrichers built later with the same registry (a
// reload) continue them.
func New(reg *metrics.Registry) *Enricher {
	if reg == nil {
		reg = metrics.Default
	}
	e := &Enricher{
		extracted: reg.Counter("audisp_enrich_hashes_extracted_total", "",
			"File hashes taken from INTEGRITY_RULE records."),
		invalid: reg.Counter("audisp_enrich_hashes_invalid_total", "",
			"INTEGRITY_RULE records whose hash= value could not be parsed."),
		tamper: map[string]*metrics.Counter{},
	}
	for _, t := range []string{tagOpenWriters, tagToMToU, tagDataFailure, tagMetaFailure} {
		e.tamper[t] = reg.Counter("audisp_enrich_ima_tamper_total", `tag="`+t+`"`,
			"IMA tamper signals seen (invalid_pcr causes, appraisal failures), by tag.")
	}
	return e
}

// Name returns "hashes".
func (*Enricher) Name() string { return "hashes" }

// Enrich appends one FileHash per INTEGRITY_RULE record carrying a valid
// hash (identical path/algorithm/digest triples once, the first record
// wins), in record order, and adds the tamper tags and severity described in
// the package comment. Records without hash= (policy-load lines) are
// ignored. A hash= value that is not a digest (audit.ParseDigest) is counted
// and reported in the returned error, which the pool turns into a warning on
// the event (one line per record); the other records are still handled.
// The summary's file.hash is the digest of the first INTEGRITY_RULE with a
// hash=, read by the same parser, so when set it is always one of
// Event.Hashes.
func (e *Enricher) Enrich(_ context.Context, ev *audit.Event) error {
	var errs []error
	for i, rec := range ev.Records {
		switch rec.TypeNum {
		case audit.TypeIntegrityRule:
			if err := e.addHash(ev, i, rec); err != nil {
				errs = append(errs, err)
			}
		case audit.TypeIntegrityPCR:
			op, _ := rec.Get("op")
			if op != "invalid_pcr" {
				continue
			}
			cause, _ := rec.Get("cause")
			switch {
			case strings.EqualFold(cause, "open_writers"):
				e.tamperTag(ev, tagOpenWriters, SeverityOpenWriters)
			case strings.EqualFold(cause, "ToMToU"):
				e.tamperTag(ev, tagToMToU, SeverityToMToU)
			}
		case audit.TypeIntegrityData, audit.TypeIntegrityMetadata:
			if res, _ := rec.Get("res"); res != "0" {
				continue
			}
			if rec.TypeNum == audit.TypeIntegrityData {
				e.tamperTag(ev, tagDataFailure, SeverityDataFailure)
			} else {
				e.tamperTag(ev, tagMetaFailure, SeverityMetaFailure)
			}
		}
	}
	return errors.Join(errs...)
}

func (e *Enricher) tamperTag(ev *audit.Event, tag string, sev int) {
	e.tamper[tag].Inc()
	ev.AddTag(tag)
	if ev.Severity < sev {
		ev.Severity = sev
	}
}

func (e *Enricher) addHash(ev *audit.Event, idx int, rec *audit.Record) error {
	var hf *audit.Field
	for i := range rec.Fields {
		if rec.Fields[i].Name == "hash" {
			hf = &rec.Fields[i]
			break
		}
	}
	if hf == nil {
		return nil
	}
	algo, hex, ok := audit.ParseDigest(hf.Value)
	if !ok {
		e.invalid.Inc()
		return fmt.Errorf("record %d (%s): not a digest: hash=%.80q", idx, rec.Type, hf.Value) // the pool adds "hashes: "
	}
	path, _ := rec.Get("file")
	h := audit.FileHash{Path: path, Algo: algo, Hex: hex, Record: idx}
	for _, x := range ev.Hashes {
		if x.Path == h.Path && x.Algo == h.Algo && x.Hex == h.Hex {
			return nil
		}
	}
	e.extracted.Inc()
	ev.Hashes = append(ev.Hashes, h)
	return nil
}

var _ enrich.Enricher = (*Enricher)(nil)
