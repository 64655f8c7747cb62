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
	if err == nil || !strings.Contains(err.Error(), "public key") {
		t.Fatalf("got %v, want a public key error", err)
	}
}
