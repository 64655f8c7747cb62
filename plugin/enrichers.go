package plugin

import (
	"log/slog"

	"github.com/audisp-enrich/audisp-enrich/conf"
	"github.com/audisp-enrich/audisp-enrich/enrich"
	"github.com/audisp-enrich/audisp-enrich/enrich/attack"
	"github.com/audisp-enrich/audisp-enrich/enrich/blocklist"
	"github.com/audisp-enrich/audisp-enrich/enrich/hashes"
	"github.com/audisp-enrich/audisp-enrich/enrich/hunt"
	"github.com/audisp-enrich/audisp-enrich/enrich/proc"
	"github.com/audisp-enrich/audisp-enrich/enrich/virustotal"
)

// enrichers is the configured enricher chain plus what must be reloaded or
// closed with it.
type enrichers struct {
	chain     []enrich.Enricher
	blocklist *blocklist.Enricher
	vt        *virustotal.Enricher
}

// buildEnrichers builds the chain in dependency order: hashes and the
// process table first, then ATT&CK tags, blocklists, the hunting rules
// (they read the parent, the keys and the blocklist result), and
// VirusTotal last (it needs the allowlist result and the severity for its
// priority). Hunting rules on VirusTotal verdicts see cached verdicts only
// when max_wait is 0.
func buildEnrichers(c *conf.EnrichConfig, emit enrich.Emitter, log *slog.Logger) (*enrichers, error) {
	e := &enrichers{}
	if c.Hashes.Enabled {
		e.chain = append(e.chain, hashes.New())
	}
	if c.Proc.Enabled {
		t, err := proc.New(c.Proc)
		if err != nil {
			return nil, err
		}
		e.chain = append(e.chain, t)
	}
	if c.Attack.Enabled {
		a, err := attack.New(c.Attack)
		if err != nil {
			return nil, err
		}
		e.chain = append(e.chain, a)
	}
	if c.Blocklist.Enabled && len(c.Blocklist.Lists) > 0 {
		b, err := blocklist.New(c.Blocklist, log)
		if err != nil {
			return nil, err
		}
		e.blocklist = b
		e.chain = append(e.chain, b)
	}
	if c.Hunt.Enabled {
		h, err := hunt.New(c.Hunt)
		if err != nil {
			e.close()
			return nil, err
		}
		e.chain = append(e.chain, h)
	}
	if c.VirusTotal.Enabled {
		v, err := virustotal.New(c.VirusTotal, emit, log)
		if err != nil {
			e.close()
			return nil, err
		}
		e.vt = v
		e.chain = append(e.chain, v)
	}
	return e, nil
}

// reload re-reads the hash lists (SIGHUP).
func (e *enrichers) reload(log *slog.Logger) {
	if e.blocklist != nil {
		if err := e.blocklist.Reload(); err != nil {
			log.Error("blocklist reload failed; previous lists stay in use", "err", err)
		}
	}
}

func (e *enrichers) close() {
	if e.vt != nil {
		_ = e.vt.Close()
	}
	if e.blocklist != nil {
		_ = e.blocklist.Close()
	}
}
