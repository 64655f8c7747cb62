package encode

import "github.com/audisp-enrich/audisp-enrich/plugin/audit"

// The uncached renderings the render caches (ThreatCache, SigmaCache)
// must equal; the encoders always go through the caches.

// Threat writes, uncached, the member "threat": the ECS threat.* columns of ts, with
// the names and reference URLs only when details is set.
func Threat(w *Writer, ts []audit.Technique, details bool) {
	w.Key("threat")
	if details {
		threatValue(w, ts, 3)
	} else {
		threatValue(w, ts, 1)
	}
}

// Sigma writes, uncached, the member "sigma" when a Sigma rule matched.
func Sigma(w *Writer, sigma []audit.SigmaHit) {
	if len(sigma) == 0 {
		return
	}
	w.Key("sigma")
	sigmaValue(w, sigma)
}
