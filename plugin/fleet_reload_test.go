package plugin

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/conf"
	"github.com/audisp-enrich/audisp-enrich/enrich/fleet"
	"github.com/audisp-enrich/audisp-enrich/plugin/metrics"
)

// fleetReload is a pipeline of a fleet host whose brokers are away (the
// host connects in the background, so it starts and marks hashes
// pending), with its sightings spool on disk under the state directory
// dir, writing to dir/events.json.
type fleetReload struct {
	t      *testing.T
	dir    string
	pub    string
	reg    *metrics.Registry
	p      *Pipeline
	serial int
}

func newFleetReload(t *testing.T) *fleetReload {
	dir := t.TempDir()
	pub, err := fleet.GenerateKey(filepath.Join(dir, "verdicts.key"))
	if err != nil {
		t.Fatal(err)
	}
	f := &fleetReload{t: t, dir: dir, pub: pub, reg: &metrics.Registry{}}
	if f.p, err = NewPipeline(f.config("", ""), slog.New(slog.DiscardHandler), f.reg, true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		f.p.Close(ctx)
	})
	return f
}

// config is the host's config with fleet appended to [enrich.fleet] and
// sinks after the events sink.
func (f *fleetReload) config(fleetKeys, sinks string) *conf.Config {
	return parseConfig(f.t, fmt.Sprintf(`state_dir = %q
[log]
syslog = false
[enrich.fleet]
enabled = true
brokers = ["127.0.0.1:1"]
verdict_public_key = %q
%s
[[sink]]
name = "events"
type = "file"
[sink.file]
path = %q
%s`, f.dir, f.pub, fleetKeys, filepath.Join(f.dir, "events.json"), sinks))
}

// exec feeds one IMA-measured exec of a new hash and returns the hash.
func (f *fleetReload) exec() string {
	f.serial++
	hash := fmt.Sprintf("%064x", f.serial)
	for _, l := range imaLines(f.serial, fmt.Sprintf("/usr/local/bin/x%d", f.serial), hash) {
		f.p.handle(l, inputPos{})
	}
	f.p.Idle()
	return hash
}

// pending is audisp_enrich_fleet_pending: the hashes the running host
// holds waiting for a verdict.
func (f *fleetReload) pending() int {
	return int(f.reg.Snapshot()["audisp_enrich_fleet_pending"])
}

// waitPendingDoc waits until the file at path has the event of hash,
// marked pending by the fleet host.
func (f *fleetReload) waitPendingDoc(path, hash string) {
	f.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, hash) && strings.Contains(l, `"status":"pending"`) {
				return
			}
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%s: no document of %s marked pending:\n%s", path, hash[56:], b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestReloadKeepsFleetHost: with [enrich.fleet] on and its spool on disk,
// a SIGHUP that re-reads the same config succeeds and keeps the running
// host (with the hashes it holds pending), and one that adds a sink
// applies it. Before, every reload built a second host beside the running
// one, whose spool could not take the lock the running one holds: every
// SIGHUP failed ("disk buffer …: in use by another process") and no
// change to [enrich] or [[sink]] applied without a restart.
func TestReloadKeepsFleetHost(t *testing.T) {
	f := newFleetReload(t)
	host := f.p.enr.fleet
	f.waitPendingDoc(filepath.Join(f.dir, "events.json"), f.exec())
	if err := f.p.Reload(f.config("", "")); err != nil {
		t.Fatalf("reload of the same config: %v", err)
	}
	if f.p.enr.fleet != host {
		t.Error("the same config replaced the fleet host")
	}
	extra := filepath.Join(f.dir, "extra.json")
	if err := f.p.Reload(f.config("", fmt.Sprintf("[[sink]]\nname = \"extra\"\ntype = \"file\"\n[sink.file]\npath = %q\n", extra))); err != nil {
		t.Fatalf("reload that adds a sink: %v", err)
	}
	if f.p.enr.fleet != host {
		t.Error("a reload that changed no [enrich.fleet] setting replaced the fleet host")
	}
	hash := f.exec()
	f.waitPendingDoc(extra, hash)
	f.waitPendingDoc(filepath.Join(f.dir, "events.json"), hash)
	if got := f.pending(); got != 2 {
		t.Errorf("%d hashes pending after two reloads, want 2 (the kept host's first and the new one)", got)
	}
}

// TestReloadReplacesFleetHost: a reload that changes [enrich.fleet]
// closes the running host (its spool's lock) and opens one with the new
// settings, which starts with no hash pending. When the new settings
// cannot start (a state_dir under a regular file), the previous ones are
// started again, as for VirusTotal (openVT); when those cannot either, the
// pipeline goes on without the fleet. Each reload succeeds: the rest of
// the new config applies.
func TestReloadReplacesFleetHost(t *testing.T) {
	f := newFleetReload(t)
	old := f.p.enr.fleet
	events := filepath.Join(f.dir, "events.json")
	f.waitPendingDoc(events, f.exec())
	if got := f.pending(); got != 1 {
		t.Fatalf("%d hashes pending, want 1", got)
	}
	if err := f.p.Reload(f.config(`host_name = "renamed"`, "")); err != nil {
		t.Fatalf("reload that changes [enrich.fleet]: %v", err)
	}
	if f.p.enr.fleet == nil || f.p.enr.fleet == old {
		t.Fatalf("fleet host after the change: %p, before %p: want a new one", f.p.enr.fleet, old)
	}
	if got := f.pending(); got != 0 {
		t.Errorf("%d hashes pending after the change, want 0 (a new host)", got)
	}
	f.waitPendingDoc(events, f.exec())

	// New settings that cannot start: the previous ones run again.
	file := filepath.Join(f.dir, "a-file")
	must(t, os.WriteFile(file, nil, 0o600))
	renamed := f.p.enr.fleet
	extra := filepath.Join(f.dir, "extra.json")
	sink := fmt.Sprintf("[[sink]]\nname = \"extra\"\ntype = \"file\"\n[sink.file]\npath = %q\n", extra)
	if err := f.p.Reload(f.config(fmt.Sprintf("state_dir = %q", filepath.Join(file, "state")), sink)); err != nil {
		t.Fatalf("reload with a fleet state_dir that cannot be made: %v", err)
	}
	if f.p.enr.fleet == nil || f.p.enr.fleet == renamed {
		t.Fatalf("fleet host after a failed change: %p, before %p: want one with the previous settings", f.p.enr.fleet, renamed)
	}
	hash := f.exec()
	f.waitPendingDoc(extra, hash)
	f.waitPendingDoc(events, hash)

	// Neither settings can start: the pipeline runs without the fleet.
	// (The previous settings are those the running host runs with, here
	// the renamed ones it fell back to.)
	must(t, os.RemoveAll(filepath.Join(f.dir, "spool", fleet.SpoolName)))
	must(t, os.WriteFile(filepath.Join(f.dir, "spool", fleet.SpoolName), nil, 0o600))
	if err := f.p.Reload(f.config(fmt.Sprintf("state_dir = %q", filepath.Join(file, "state")), "")); err != nil {
		t.Fatalf("reload with neither fleet settings starting: %v", err)
	}
	if f.p.enr.fleet != nil {
		t.Error("a fleet host runs though neither settings could start")
	}
	hash = f.exec()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(events)
		if i := strings.Index(string(b), hash); i >= 0 {
			line := string(b)[strings.LastIndex(string(b)[:i], "\n")+1:]
			line, _, _ = strings.Cut(line, "\n")
			if strings.Contains(line, `"virustotal"`) {
				t.Errorf("an event enriched by the fleet though it does not run: %s", line)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no document of %s after the reload", hash[56:])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fleetFallback is a fleetReload whose host fell back: a reload to the
// settings "B" (fleet state_dir under a regular file, a-file, so they
// cannot start) left the host running the settings it started with, "A".
// bKeys is B's [enrich.fleet] keys; fix removes the cause, so that B can
// start; bSpool is B's sightings spool, made when a host starts with B.
type fleetFallback struct {
	*fleetReload
	bKeys, bSpool string
	fix           func()
}

func newFleetFallback(t *testing.T) *fleetFallback {
	f := &fleetFallback{fleetReload: newFleetReload(t)}
	file := filepath.Join(f.dir, "a-file")
	must(t, os.WriteFile(file, nil, 0o600))
	f.bKeys = fmt.Sprintf("state_dir = %q", filepath.Join(file, "state"))
	f.bSpool = filepath.Join(file, "state", "spool", fleet.SpoolName)
	f.fix = func() {
		must(t, os.Remove(file))
		must(t, os.MkdirAll(filepath.Join(file, "state"), 0o750))
	}
	a := f.p.enr.fleet
	if err := f.p.Reload(f.config(f.bKeys, "")); err != nil {
		t.Fatalf("reload to settings that cannot start: %v", err)
	}
	if f.p.enr.fleet == nil || f.p.enr.fleet == a {
		t.Fatalf("fleet host after a failed change: %p, before %p: want one with the previous settings", f.p.enr.fleet, a)
	}
	return f
}

// TestReloadRetriesFleetSettings: after new fleet settings B could not
// start and the host fell back to the previous ones A, a SIGHUP with the
// same config B, once the cause is fixed, starts a host with B; the next
// one keeps it. Before, Reload compared B with the config last loaded (B,
// "unchanged") and kept the A host at every SIGHUP until a restart.
func TestReloadRetriesFleetSettings(t *testing.T) {
	f := newFleetFallback(t)
	fallback := f.p.enr.fleet
	if _, err := os.Stat(f.bSpool); err == nil {
		t.Fatal("B's spool exists though B could not start")
	}
	f.fix()
	if err := f.p.Reload(f.config(f.bKeys, "")); err != nil {
		t.Fatalf("reload to B once it can start: %v", err)
	}
	b := f.p.enr.fleet
	if b == nil || b == fallback {
		t.Fatalf("fleet host after the fix: %p, fallback %p: want a new one with B", b, fallback)
	}
	if _, err := os.Stat(f.bSpool); err != nil {
		t.Errorf("the host started after the fix does not run B: %v", err)
	}
	f.waitPendingDoc(filepath.Join(f.dir, "events.json"), f.exec())
	if err := f.p.Reload(f.config(f.bKeys, "")); err != nil {
		t.Fatal(err)
	}
	if f.p.enr.fleet != b {
		t.Error("a reload to the settings the host runs with replaced it")
	}
}

// TestReloadWithoutFleetHost: when neither the new fleet settings nor the
// previous ones could start (the plugin runs without the fleet), a SIGHUP
// with the same [enrich.fleet] and a new sink succeeds and applies the
// sink, though the fleet still cannot start; once the cause is fixed, the
// next one starts the host. Before, Reload thought the unchanged settings
// had a running host to keep, built a new one in buildEnrichers, and its
// failure failed the whole reload: no other change applied.
func TestReloadWithoutFleetHost(t *testing.T) {
	f := newFleetFallback(t)
	spool := filepath.Join(f.dir, "spool", fleet.SpoolName)
	must(t, os.RemoveAll(spool))
	must(t, os.WriteFile(spool, nil, 0o600)) // A cannot start again either
	if err := f.p.Reload(f.config(`host_name = "renamed"`, "")); err != nil {
		t.Fatal(err)
	}
	if f.p.enr.fleet != nil {
		t.Fatal("a fleet host runs though neither settings could start")
	}
	extra := filepath.Join(f.dir, "extra.json")
	sink := fmt.Sprintf("[[sink]]\nname = \"extra\"\ntype = \"file\"\n[sink.file]\npath = %q\n", extra)
	if err := f.p.Reload(f.config(`host_name = "renamed"`, sink)); err != nil {
		t.Fatalf("reload with unchanged [enrich.fleet] that adds a sink: %v", err)
	}
	if f.p.enr.fleet != nil {
		t.Fatal("a fleet host runs though its settings cannot start")
	}
	hash := f.exec()
	deadline := time.Now().Add(5 * time.Second)
	for b, _ := os.ReadFile(extra); !strings.Contains(string(b), hash); b, _ = os.ReadFile(extra) {
		if time.Now().After(deadline) {
			t.Fatalf("the added sink got no document of %s", hash[56:])
		}
		time.Sleep(10 * time.Millisecond)
	}
	must(t, os.Remove(spool))
	if err := f.p.Reload(f.config(`host_name = "renamed"`, sink)); err != nil {
		t.Fatal(err)
	}
	if f.p.enr.fleet == nil {
		t.Fatal("no fleet host after the cause was fixed")
	}
	f.waitPendingDoc(extra, f.exec())
}

// TestReloadFallsBackToRunningFleet: after settings B could not start and
// the host runs A, a reload to settings C that cannot start either falls
// back to A, the settings the host runs with. Before, it fell back to B
// (the config last loaded), which failed again, and the plugin ran
// without the fleet.
func TestReloadFallsBackToRunningFleet(t *testing.T) {
	f := newFleetFallback(t)
	fallback := f.p.enr.fleet
	cKeys := f.bKeys + "\nhost_name = \"renamed\""
	if err := f.p.Reload(f.config(cKeys, "")); err != nil {
		t.Fatal(err)
	}
	if f.p.enr.fleet == nil || f.p.enr.fleet == fallback {
		t.Fatalf("fleet host after C failed: %p, before %p: want a new one with A's settings", f.p.enr.fleet, fallback)
	}
	f.waitPendingDoc(filepath.Join(f.dir, "events.json"), f.exec())
}
