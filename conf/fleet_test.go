package conf

import (
	"strings"
	"testing"
)

// TestFleetHostExclusive: a fleet host holds no VirusTotal key, so
// [enrich.fleet] and [enrich.virustotal] cannot both be on, and the error
// names the line.
func TestFleetHostExclusive(t *testing.T) {
	cfg := `[enrich.virustotal]
enabled = true
api_key = "k"

[enrich.fleet]
enabled = true
brokers = ["127.0.0.1:9092"]
verdict_public_key = "nI3zfmZw1JMAAEXys0HQzEVysiyQwjSLlYtjotM8L+U="
`
	_, err := Parse("both.toml", []byte(cfg))
	if err == nil || !strings.Contains(err.Error(), "enable one") || !strings.Contains(err.Error(), "both.toml:5:") {
		t.Fatalf("got %v, want the exclusivity error at line 5", err)
	}
	_, err = Parse("badkey.toml", []byte("[enrich.fleet]\nenabled = true\nbrokers = [\"a:1\"]\nverdict_public_key = \"xx\"\n"))
	if err == nil || !strings.Contains(err.Error(), "badkey.toml:4:") || !strings.Contains(err.Error(), "verdict_public_key") {
		t.Fatalf("got %v, want a verdict_public_key error at badkey.toml:4", err)
	}
}

// TestFleetSmallOrderKey: an all-zero verdict_public_key (a placeholder
// under which anyone can forge verdicts) is refused at load, naming the
// file and line.
func TestFleetSmallOrderKey(t *testing.T) {
	_, err := Parse("zero.toml", []byte("[enrich.fleet]\nenabled = true\nbrokers = [\"a:1\"]\nverdict_public_key = \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"\n"))
	if err == nil || !strings.Contains(err.Error(), "small order") || !strings.Contains(err.Error(), "zero.toml:4:") {
		t.Fatalf("got %v, want a small-order error at zero.toml:4", err)
	}
}

// TestVerdictsRetiredKey: a bad key in [verdicts]
// retired_verdict_public_keys is refused at load, naming the file and line.
func TestVerdictsRetiredKey(t *testing.T) {
	_, err := Parse("svc.toml", []byte("[verdicts]\nbrokers = [\"a:1\"]\nsigning_key_file = \"/k\"\nretired_verdict_public_keys = [\"xx\"]\n"))
	if err == nil || !strings.Contains(err.Error(), "svc.toml:4:") || !strings.Contains(err.Error(), "retired_verdict_public_keys[0]") {
		t.Fatalf("got %v, want a retired_verdict_public_keys[0] error at svc.toml:4", err)
	}
}
