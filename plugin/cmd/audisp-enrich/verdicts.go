package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/audisp-enrich/audisp-enrich/enrich/fleet"
	"github.com/audisp-enrich/audisp-enrich/plugin"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
)

const verdictsUsage = "usage: audisp-enrich verdicts --config FILE [init] | audisp-enrich verdicts keygen FILE\n"

// verdicts runs the fleet verdict service, creates its topics (init) or
// writes a signing key (keygen). --config may come before or after init.
func verdicts(cfgPath string, args []string, stdout, stderr io.Writer) int {
	sub := ""
	if len(args) > 0 {
		sub, args = args[0], args[1:]
	}
	if sub == "keygen" {
		if len(args) != 1 {
			fmt.Fprint(stderr, verdictsUsage)
			return 2
		}
		pub, err := fleet.GenerateKey(args[0])
		if err != nil {
			fmt.Fprintln(stderr, "audisp-enrich:", err)
			return 1
		}
		fmt.Fprintf(stdout, "verdict_public_key = %q\n", pub)
		return 0
	}
	fs := flag.NewFlagSet("verdicts", flag.ContinueOnError)
	fs.SetOutput(stderr)
	p := fs.String("config", cfgPath, "config file")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 || (sub != "" && sub != "init") || *p == "" {
		fmt.Fprint(stderr, verdictsUsage)
		return 2
	}
	cfg, _, err := loadConfig(*p, false)
	if err != nil {
		fmt.Fprintln(stderr, "audisp-enrich:", err)
		return 1
	}
	if len(cfg.Verdicts.Brokers) == 0 {
		fmt.Fprintf(stderr, "audisp-enrich: %s: [verdicts] brokers is empty\n", *p)
		return 1
	}
	log := plugin.NewLogger(cfg.Log.Level, cfg.Log.Syslog)
	slog.SetDefault(log)
	if sub == "init" {
		created, err := fleet.EnsureTopics(cfg.Verdicts, log)
		if err != nil {
			fmt.Fprintln(stderr, "audisp-enrich:", err)
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
	svc, err := fleet.NewService(cfg.Verdicts, cfg.Enrich.VirusTotal, log, metrics.Default)
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
