// Command execload execs a small program at a fixed rate, the load of
// laurel's published CPU-cost method (edr-loadgen spawning /bin/true).
//
//	execload -rate 1000 -duration 60s [-cmd /bin/true] [-workers 16]
//
// A scheduler releases one start every 1/rate seconds on an absolute
// timeline (no drift); a pool of workers starts the program and waits for
// it. A start that finds every worker busy and `workers` starts already
// waiting is counted as missed, not queued, so the achieved rate is
// honest. On exit it prints one JSON line to stdout: {"rate":..,
// "duration_s":..,"started":..,"missed":..,"failed":..,"achieved_per_s":..}.
// It exits 1 when more than 1% of the starts were missed or failed.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	rate := flag.Float64("rate", 100, "execs per second")
	dur := flag.Duration("duration", 60*time.Second, "how long to run")
	cmd := flag.String("cmd", "/bin/true", "program to exec (absolute path, no arguments)")
	workers := flag.Int("workers", 16, "concurrent exec+wait workers")
	flag.Parse()
	if *rate <= 0 || *dur <= 0 || *workers <= 0 {
		fmt.Fprintln(os.Stderr, "execload: -rate, -duration and -workers must be positive")
		os.Exit(2)
	}
	if _, err := os.Stat(*cmd); err != nil {
		fmt.Fprintf(os.Stderr, "execload: %v\n", err)
		os.Exit(2)
	}
	res := run(*cmd, *rate, *dur, *workers)
	_ = json.NewEncoder(os.Stdout).Encode(res)
	if float64(res.Missed+res.Failed) > 0.01*float64(res.Started+res.Missed) {
		os.Exit(1)
	}
}

// result is what one run achieved.
type result struct {
	Rate     float64 `json:"rate"`
	Duration float64 `json:"duration_s"`
	Started  int64   `json:"started"`
	Missed   int64   `json:"missed"`
	Failed   int64   `json:"failed"`
	Achieved float64 `json:"achieved_per_s"`
}

func run(path string, rate float64, dur time.Duration, workers int) result {
	var started, failed atomic.Int64
	var missed int64
	// A start waits at most for `workers` earlier ones; past that it is missed.
	tokens := make(chan struct{}, workers)
	var wg sync.WaitGroup
	attr := &os.ProcAttr{Files: []*os.File{nil, nil, nil}}
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range tokens {
				p, err := os.StartProcess(path, []string{path}, attr)
				if err != nil {
					failed.Add(1)
					continue
				}
				started.Add(1)
				if st, err := p.Wait(); err != nil || !st.Success() {
					failed.Add(1)
				}
			}
		}()
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	interval := time.Duration(float64(time.Second) / rate)
	begin := time.Now()
	end := begin.Add(dur)
loop:
	for i := int64(0); ; i++ {
		at := begin.Add(time.Duration(i) * interval)
		if !at.Before(end) {
			break
		}
		if d := time.Until(at); d > 0 {
			select {
			case <-time.After(d):
			case <-stop:
				break loop
			}
		}
		select {
		case tokens <- struct{}{}:
		default:
			missed++
		}
	}
	close(tokens)
	wg.Wait()
	el := time.Since(begin).Seconds()
	return result{Rate: rate, Duration: el, Started: started.Load(), Missed: missed, Failed: failed.Load(),
		Achieved: float64(started.Load()) / el}
}
