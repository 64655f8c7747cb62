// Package perf holds the measuring helpers of the performance evidence
// (docs/performance.md): medians, CPU time of a running process from
// /proc/PID/stat, the load average, and Prometheus histogram quantiles.
// The peer benchmark (peerbench), the exec load generator (execload) and
// the live-cost and end-to-end tests of this package use them.
package perf

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ClockTicks is the kernel's USER_HZ, the unit of utime and stime in
// /proc/PID/stat. It is 100 on every Linux architecture Go supports.
const ClockTicks = 100

// Median returns the median of xs (the mean of the two middle values for an
// even count). xs is not modified. It returns NaN for an empty slice.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// ProcCPU returns the user+system CPU time pid has used so far, from
// /proc/PID/stat (utime and stime, fields 14 and 15), with a resolution of
// 1/ClockTicks s. Children are not included.
func ProcCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(string(b))
}

// parseStatCPU reads utime+stime from a /proc/PID/stat line. The command
// name (field 2) may hold spaces and parentheses, so the fields are counted
// from the last ')'.
func parseStatCPU(line string) (time.Duration, error) {
	f, err := statFields(line)
	if err != nil {
		return 0, err
	}
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	ut, err := strconv.ParseUint(f[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stat: utime %q: %v", f[11], err)
	}
	st, err := strconv.ParseUint(f[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stat: stime %q: %v", f[12], err)
	}
	return time.Duration(ut+st) * time.Second / ClockTicks, nil
}

// ProcMem returns pid's peak resident set size in KiB (VmHWM of
// /proc/PID/status) and the minor page faults it has taken so far (minflt,
// field 10 of /proc/PID/stat). Both are counts: unlike CPU shares they hold
// up on a loaded machine.
func ProcMem(pid int) (peakKiB, minflt int64, err error) {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	if peakKiB, err = parseStatusHWM(string(st)); err != nil {
		return 0, 0, err
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	f, err := statFields(string(b))
	if err != nil {
		return 0, 0, err
	}
	// f[0] is field 3 (state); minflt is field 10.
	if minflt, err = strconv.ParseInt(f[7], 10, 64); err != nil {
		return 0, 0, fmt.Errorf("stat: minflt %q: %v", f[7], err)
	}
	return peakKiB, minflt, nil
}

// parseStatusHWM reads the VmHWM line ("VmHWM:    5512 kB") of a
// /proc/PID/status text.
func parseStatusHWM(status string) (int64, error) {
	for l := range strings.Lines(status) {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("status: VmHWM %q: %v", strings.TrimSpace(v), err)
			}
			return kb, nil
		}
	}
	return 0, fmt.Errorf("status: no VmHWM line")
}

// statFields returns the fields of a /proc/PID/stat line after the command
// name, from field 3 (state) on, at least 13 of them (to stime).
func statFields(line string) ([]string, error) {
	i := strings.LastIndexByte(line, ')')
	if i < 0 {
		return nil, fmt.Errorf("stat: no ')' in %q", line)
	}
	f := strings.Fields(line[i+1:])
	if len(f) < 13 {
		return nil, fmt.Errorf("stat: %d fields after the command name, want at least 13", len(f))
	}
	return f, nil
}

// LoadAvg returns the 1, 5 and 15 minute load averages from /proc/loadavg.
func LoadAvg() ([3]float64, error) {
	var l [3]float64
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return l, err
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return l, fmt.Errorf("/proc/loadavg: %q", b)
	}
	for i := range l {
		if l[i], err = strconv.ParseFloat(f[i], 64); err != nil {
			return l, fmt.Errorf("/proc/loadavg: %v", err)
		}
	}
	return l, nil
}

// Bucket is one cumulative Prometheus histogram bucket.
type Bucket struct {
	LE    float64 // upper bound; +Inf for the last
	Count float64 // observations <= LE
}

// ScrapeHistogram reads the cumulative buckets of histogram name (without
// labels) from Prometheus text in r, in file order.
func ScrapeHistogram(r io.Reader, name string) ([]Bucket, error) {
	var out []Bucket
	prefix := name + `_bucket{le="`
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		rest := line[len(prefix):]
		q := strings.IndexByte(rest, '"')
		if q < 0 || !strings.HasPrefix(rest[q:], `"} `) {
			return nil, fmt.Errorf("histogram %s: bad bucket line %q", name, line)
		}
		le, err := strconv.ParseFloat(rest[:q], 64)
		if err != nil {
			return nil, fmt.Errorf("histogram %s: bad le in %q", name, line)
		}
		n, err := strconv.ParseFloat(strings.TrimSpace(rest[q+3:]), 64)
		if err != nil {
			return nil, fmt.Errorf("histogram %s: bad count in %q", name, line)
		}
		out = append(out, Bucket{le, n})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("histogram %s: no buckets", name)
	}
	return out, nil
}

// Quantile returns the upper bound of the first bucket holding quantile q
// (0 < q <= 1) of the observations: the value is at most that bound. It
// returns NaN when there are no observations.
func Quantile(b []Bucket, q float64) float64 {
	if len(b) == 0 || b[len(b)-1].Count == 0 {
		return math.NaN()
	}
	want := q * b[len(b)-1].Count
	for _, x := range b {
		if x.Count >= want {
			return x.LE
		}
	}
	return b[len(b)-1].LE
}
