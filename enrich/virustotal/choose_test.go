package virustotal

import (
	"strings"
	"testing"

	"github.com/audisp-enrich/audisp-enrich/enrich/packages"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

// TestChoose: the one decision whether an event needs a verdict, shared by
// this enricher and the fleet host (whose sightings follow it too).
func TestChoose(t *testing.T) {
	sha := strings.Repeat("ab", 32)
	md5 := strings.Repeat("cd", 16)
	for _, c := range []struct {
		name   string
		ev     audit.Enrichment
		hex    string
		reason string
	}{
		{"sha256 preferred", audit.Enrichment{Hashes: []audit.FileHash{{Algo: "md5", Hex: md5}, {Algo: "sha256", Hex: sha}}}, sha, ""},
		{"no usable hash", audit.Enrichment{Hashes: []audit.FileHash{{Algo: "sha256", Hex: "zz"}}}, "", ReasonNoHash},
		{"allow-listed", audit.Enrichment{Hashes: []audit.FileHash{{Algo: "sha256", Hex: sha}}, Allowlisted: []audit.ListHit{{List: "ok", Hash: sha}}}, sha, ReasonAllowlisted},
		{"package file", audit.Enrichment{Hashes: []audit.FileHash{{Algo: "sha256", Hex: sha}}, Package: &audit.PackageResult{Status: packages.StatusPackage}}, sha, ReasonPackage},
		{"modified package file is looked up", audit.Enrichment{Hashes: []audit.FileHash{{Algo: "sha256", Hex: sha}}, Package: &audit.PackageResult{Status: "modified"}}, sha, ""},
	} {
		fh, reason := Choose(&audit.Event{Enrichment: c.ev})
		if fh.Hex != c.hex || reason != c.reason {
			t.Errorf("%s: got %q, %q; want %q, %q", c.name, fh.Hex, reason, c.hex, c.reason)
		}
	}
}
