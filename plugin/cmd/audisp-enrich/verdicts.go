package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/audisp-enrich/audisp-enrich/enrich/blocklist"
	"github.com/audisp-enrich/audisp-enrich/enrich/fleet"
	"github.com/audisp-enrich/audisp-enrich/enrich/packages"
	"github.com/audisp-enrich/audisp-enrich/plugin"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
)

const verdictsUsage = `Usage: audisp-enrich verdicts --config FILE [init]
       audisp-enrich verdicts keygen FILE

Runs the fleet verdict service of the config's [verdicts] table, with the
VirusTotal key and budgets of [enrich.virustotal]; init only creates the
missing topics. keygen writes a new signing key to FILE (mode 0600) and
prints the verdict_public_key line for the hosts. See docs/fleet.md.
`

// verdicts runs the fleet verdict service, creates its topics (init) or
// writes a signing key (keygen). --config may come before or after init.
func verdicts(cfgPath string, args []string, stdout, stderr io.Writer) int {
	sub := ""
	if len(args) > 0 {
		sub, args = args[0], args[1:]
	}
	if sub == "keygen" {
		if len(args) != 1 {
			return usageError(stderr, "verdicts", errors.New("keygen needs one FILE"))
		}
		pub, err := fleet.GenerateKey(args[0])
		if err != nil {
			fail(stderr, err)
			return 1
		}
		fmt.Fprintf(stdout, "verdict_public_key = %q\n", pub)
		return 0
	}
	fs := flag.NewFlagSet("verdicts", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	p := fs.String("config", cfgPath, "config file")
	if err := fs.Parse(args); err != nil {
		return usageError(stderr, "verdicts", err)
	}
	switch {
	case sub != "" && sub != "init":
		return usageError(stderr, "verdicts", fmt.Errorf("unknown verdicts command %q (want init or keygen)", sub))
	case fs.NArg() > 0:
		return usageError(stderr, "verdicts", fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	case *p == "":
		return usageError(stderr, "verdicts", errors.New("verdicts needs --config FILE"))
	}
	cfg, _, err := loadConfig(*p, false)
	if err != nil {
		fail(stderr, err)
		return 1
	}
	if len(cfg.Verdicts.Brokers) == 0 {
		fail(stderr, fmt.Errorf("%s: [verdicts] brokers is empty", *p))
		return 1
	}
	log := plugin.NewLogger(cfg.Log.Level, cfg.Log.Syslog)
	slog.SetDefault(log)
	if sub == "init" {
		created, err := fleet.EnsureTopics(cfg.Verdicts, log)
		if err != nil {
			fail(stderr, err)
			return 1
		}
		fmt.Fprintf(stdout, "created topics: %v\n", created)
		return 0
	}
	if cfg.Status.Listen != "" {
		ln, err := plugin.ServeMetrics(cfg.Status.Listen, log)
		if err != nil {
			log.Error("fatal", "err", err)
			return 1
		}
		defer ln.Close()
	}
	loc, closeLocal, err := localSources(cfg.Enrich.Packages, cfg.Enrich.Blocklist, log)
	if err != nil {
		log.Error("fatal", "err", err)
		return 1
	}
	defer closeLocal()
	svc, err := fleet.NewService(cfg.Verdicts, cfg.Enrich.VirusTotal, loc, log, metrics.Default)
	if err != nil {
		log.Error("fatal", "err", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log.Info("verdict service running", "sightings", cfg.Verdicts.SightingsTopic, "verdicts", cfg.Verdicts.VerdictsTopic, "group", cfg.Verdicts.Group)
	err = svc.Run(ctx)
	if cerr := svc.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		log.Error("fatal", "err", err)
		return 1
	}
	return 0
}

// localSources builds the service's local verdict sources from the
// config's [enrich.packages] (when enabled; its index is built in the
// background, and hashes sighted before a path is indexed are looked up)
// and [enrich.blocklist] allow lists (block lists are ignored here: a
// blocked hash is looked up like any other).
func localSources(pc packages.Config, bc blocklist.Config, log *slog.Logger) (fleet.Local, func(), error) {
	var loc fleet.Local
	var closers []func()
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	if pc.Enabled {
		pk := packages.New(pc, log, metrics.Default)
		closers = append(closers, pk.Close)
		loc.Judges = append(loc.Judges, pk)
		loc.Distro = fleet.OSReleaseID(pc.Root, "unknown")
	}
	if bc.Enabled && len(bc.Lists) > 0 {
		bl, err := blocklist.New(bc, log, metrics.Default)
		if err != nil {
			closeAll()
			return loc, nil, err
		}
		closers = append(closers, func() { _ = bl.Close() })
		loc.Judges = append(loc.Judges, bl)
	}
	return loc, closeAll, nil
}
