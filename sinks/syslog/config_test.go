package syslog

import (
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/audisp-enrich/audisp-enrich/sinks"
)

func TestConfigTOML(t *testing.T) {
	var c Config
	_, err := toml.Decode(`address = "127.0.0.1:6514"
transport = "tls"
format = "rfc5424"
facility = "local4"
severity = "notice"
app_name = "ae"
hostname = "h1"
max_message_bytes = 16384
tls_ca = "/ca.pem"
tls_server_name = "logs.example"
write_timeout = "2s"`, &c)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Framing != FramingOctetCounting || c.WriteTimeout != 2*time.Second || c.MaxMessageBytes != 16384 {
		t.Errorf("decoded %+v", c)
	}
	if o := c.Options("1"); o.Facility != 20 || o.Severity != 5 {
		t.Errorf("options %+v", o)
	}
	d := Config{Transport: "udp", Address: "127.0.0.1:514"}
	if err := d.Validate(); err != nil || d.MaxMessageBytes != 2048 || d.AppName != "audisp-enrich" || d.Facility != "authpriv" || d.Severity != "auto" {
		t.Errorf("udp defaults: %+v %v", d, err)
	}
	u := Config{Transport: "unix"}
	if err := u.Validate(); err != nil || u.Address != "/dev/log" {
		t.Errorf("unix defaults: %+v %v", u, err)
	}
	for name, bad := range map[string]Config{
		"transport": {Transport: "sctp", Address: "a:1"},
		"framing":   {Transport: "udp", Framing: "lf", Address: "a:1"},
		"tls lf":    {Transport: "tls", Framing: "lf", Address: "a:1"},
		"facility":  {Address: "a:1", Facility: "local9"},
		"severity":  {Address: "a:1", Severity: "loud"},
		"app":       {Address: "a:1", AppName: "has space"},
		"3164 app":  {Address: "a:1", Format: "rfc3164", AppName: "a/b"},
		"max":       {Address: "a:1", MaxMessageBytes: 100},
		"cert":      {Transport: "tls", Address: "a:1", TLSFiles: sinks.TLSFiles{TLSCert: "c.pem"}},
		"key":       {Transport: "tls", Address: "a:1", TLSFiles: sinks.TLSFiles{TLSKey: "k.pem"}},
		"tls opts":  {Address: "a:1", TLSFiles: sinks.TLSFiles{TLSCA: "ca.pem"}},
		"tls key":   {Address: "a:1", TLSFiles: sinks.TLSFiles{TLSKey: "k.pem"}},
		"address":   {Transport: "tcp"},
	} {
		if err := bad.Validate(); err == nil || !strings.HasPrefix(err.Error(), "syslog: ") {
			t.Errorf("%s: got %v, want an error", name, err)
		}
	}
	// tls_key counts as a tls_* option like the others.
	k := Config{Address: "a:1", TLSFiles: sinks.TLSFiles{TLSCert: "c.pem", TLSKey: "k.pem"}}
	if err := k.Validate(); err == nil || err.Error() != "syslog: tls_* options need transport tls, not tcp" {
		t.Errorf("tls files on tcp: %v", err)
	}
	k.TLSCert = ""
	if err := k.Validate(); err == nil || err.Error() != "syslog: tls_* options need transport tls, not tcp" {
		t.Errorf("tls_key on tcp: %v", err)
	}
}
