package fleet

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/audisp-enrich/audisp-enrich/enrich"
	"github.com/audisp-enrich/audisp-enrich/enrich/virustotal"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
)

// Local are the service's own sources of verdicts, asked before a
// VirusTotal lookup: the package database and the allow lists of the
// service's config ([enrich.packages], [enrich.blocklist]). A hash they
// vouch for gets a signed verdict with status skipped (reason package or
// allowlisted) and source package:<Distro> or allowlist:<list>, and costs
// no lookup; hosts then skip it as they skip the files their own package
// database or allow lists vouch for.
type Local struct {
	// Judges run in order on a one-hash event built from the sighting
	// (its path and digest); virustotal.Choose then decides, as on hosts.
	Judges []enrich.Enricher
	// Distro names package verdicts (OSReleaseID of the packages root).
	Distro string
}

// judge returns the local verdict for a sighting, if a judge vouches for
// its hash. The verdict holds for ttl from now.
func (l *Local) judge(key string, sg Sighting, ttl time.Duration) (Verdict, bool) {
	if len(l.Judges) == 0 {
		return Verdict{}, false
	}
	ev := &audit.Event{ID: audit.EventID{Node: serviceNode}}
	ev.Hashes = []audit.FileHash{{Path: sg.Path, Algo: sg.Algo, Hex: key}}
	for _, j := range l.Judges {
		_ = j.Enrich(context.Background(), ev) // local judges never fail (enrich.Enricher contract: errors are warnings)
	}
	v := Verdict{Status: VerdictSkipped, LookedUp: time.Now().Unix(), TTL: int64(ttl / time.Second)}
	switch _, v.Reason = virustotal.Choose(ev); v.Reason {
	case virustotal.ReasonPackage:
		v.Source = SourcePackage + l.Distro
		v.MeaningfulName = strings.TrimSpace(ev.Package.Name + " " + ev.Package.Version)
	case virustotal.ReasonAllowlisted:
		v.Source = SourceAllowlist + ev.Allowlisted[0].List
		v.MeaningfulName = ev.Allowlisted[0].Label
	default:
		return Verdict{}, false
	}
	return v, v.TTL > 0
}

// OSReleaseID returns the ID of root's os-release file (etc/os-release,
// else usr/lib/os-release, as os-release(5) says), for example "debian",
// or fallback when neither names one.
func OSReleaseID(root, fallback string) string {
	for _, p := range []string{"etc/os-release", "usr/lib/os-release"} {
		b, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			continue
		}
		if id := parseOSReleaseID(b); id != "" {
			return id
		}
	}
	return fallback
}

// parseOSReleaseID returns the value of the ID= line of an os-release
// file (quotes removed), or "" when there is none or it is not made of the
// characters os-release(5) allows (a-z, 0-9, ".", "_", "-").
func parseOSReleaseID(b []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "ID=")
		if !ok {
			continue
		}
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		if v == "" || strings.TrimLeft(v, "abcdefghijklmnopqrstuvwxyz0123456789._-") != "" {
			return ""
		}
		return v
	}
	return ""
}
