package plugin

import (
	"bufio"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/audisp-enrich/audisp-enrich/conf"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
)

// Replay runs audit.log files (plain or gzip; "-" is stdin) through the
// pipeline with record-time semantics, then flushes.
func Replay(ctx context.Context, cfg *conf.Config, log *slog.Logger, files []string, stdin io.Reader) error {
	p, err := NewPipeline(cfg, log, metrics.Default, true)
	if err != nil {
		return err
	}
	// Replay waits for the sinks to deliver (until interrupted, or until a
	// sink stalls; see runnerSink.stop).
	defer p.Close(ctx)
	if len(files) == 0 {
		files = []string{"-"}
	}
	for _, f := range files {
		if err := replayFile(ctx, p, f, stdin, cfg.Input.MaxLineBytes); err != nil {
			return err
		}
	}
	return nil
}

func replayFile(ctx context.Context, p *Pipeline, name string, stdin io.Reader, maxLine int) error {
	r, closeFn, err := openLog(name, stdin)
	if err != nil {
		return err
	}
	defer closeFn()
	rd, err := NewReader(r, FramingString, maxLine, NewInputStats(metrics.Default), func(e *InputError) {
		p.errlog.report(e.Reason, fmt.Sprintf("%s: %s", name, e.Error()), string(e.Raw))
	})
	if err != nil {
		return err
	}
	ch := make(chan []string, 4)
	errc := make(chan error, 1)
	go func() { errc <- rd.RunBlocking(ch); close(ch) }()
	for batch := range ch {
		for _, l := range batch {
			p.Handle(l)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if err := <-errc; err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// openLog opens an audit log for replay: "-" is stdin; a gzip file is
// recognised by its magic bytes, whatever its name.
func openLog(name string, stdin io.Reader) (io.Reader, func(), error) {
	var r io.Reader = stdin
	closeFn := func() {}
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, nil, err
		}
		r, closeFn = f, func() { f.Close() }
	}
	br := bufio.NewReaderSize(r, 64<<10)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			closeFn()
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
		return zr, closeFn, nil
	}
	return br, closeFn, nil
}
