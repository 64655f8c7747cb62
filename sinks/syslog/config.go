package syslog

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/audisp-enrich/audisp-enrich/sinks"
)

// Config configures one syslog sink. The zero value is not usable; start
// from DefaultConfig and set Address.
type Config struct {
	// Address is host:port for the udp, tcp and tls transports, and the
	// socket path for unix and unix_stream (default "/dev/log" there).
	Address string `toml:"address"`
	// Transport is "udp", "tcp", "tls" (RFC 5425), "unix" (datagram
	// socket such as /dev/log) or "unix_stream". Default "tcp".
	Transport string `toml:"transport"`
	// Format is "rfc5424" (default) or "rfc3164".
	Format string `toml:"format"`
	// Framing applies to the stream transports (tcp, unix_stream):
	// "octet-counting" (RFC 6587 §3.4.1, default) or "lf" (non-transparent,
	// one record per line). tls always uses octet counting; datagram
	// transports send one record per datagram and take no framing.
	Framing string `toml:"framing"`
	// Facility is a facility name: kern, user, mail, daemon, auth, syslog,
	// lpr, news, uucp, cron, authpriv, ftp, local0..local7. Default
	// "authpriv" (audit data belongs in the restricted auth logs).
	Facility string `toml:"facility"`
	// Severity is "auto" (default: mapped from the event severity, none →
	// info, low → notice, medium → warning, high → err, critical → crit)
	// or a fixed severity name: emerg, alert, crit, err, warning, notice,
	// info, debug.
	Severity string `toml:"severity"`
	// AppName is the APP-NAME (RFC 5424) or TAG (RFC 3164). Default
	// "audisp-enrich"; at most 48 printable ASCII characters (32 letters,
	// digits, '-', '_' or '.' for rfc3164).
	AppName string `toml:"app_name"`
	// Hostname is the HOSTNAME field. Default: os.Hostname(). At most 255
	// printable ASCII characters.
	Hostname string `toml:"hostname"`
	// MaxMessageBytes caps one syslog message (header, structured data and
	// MSG; framing not counted). Longer messages are truncated at a UTF-8
	// boundary and marked (truncated="true" orig_bytes="N" in RFC 5424,
	// a trailing " [truncated]" in RFC 3164). 0 means the transport
	// default: 2048 for udp and unix (RFC 5426 §3.2 receivers must accept
	// 2048), 8192 for tcp, tls and unix_stream (RFC 5425 §4.3.1 SHOULD,
	// and rsyslog's default maxMessageSize). Minimum 480.
	MaxMessageBytes int `toml:"max_message_bytes"`
	// TLSFiles are tls_ca, tls_cert, tls_key and tls_server_name (tls
	// transport only). tls_server_name defaults to the host part of
	// Address.
	sinks.TLSFiles
	// WriteTimeout bounds dialing and each write. Default 5s.
	WriteTimeout time.Duration `toml:"write_timeout"`
}

// DefaultConfig returns the defaults documented on Config (Address empty).
func DefaultConfig() Config {
	return Config{
		Transport:    "tcp",
		Format:       "rfc5424",
		Facility:     "authpriv",
		Severity:     "auto",
		AppName:      "audisp-enrich",
		WriteTimeout: 5 * time.Second,
	}
}

// MinMessageBytes is the smallest accepted MaxMessageBytes (RFC 5426 §3.2).
const MinMessageBytes = 480

var facilities = map[string]int{
	"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5,
	"lpr": 6, "news": 7, "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11,
	"local0": 16, "local1": 17, "local2": 18, "local3": 19,
	"local4": 20, "local5": 21, "local6": 22, "local7": 23,
}

var severities = map[string]int{
	"emerg": 0, "alert": 1, "crit": 2, "err": 3,
	"warning": 4, "notice": 5, "info": 6, "debug": 7,
}

// fillDefaults replaces empty fields with their defaults.
func (c *Config) fillDefaults() {
	d := DefaultConfig()
	if c.Transport == "" {
		c.Transport = d.Transport
	}
	if c.Format == "" {
		c.Format = d.Format
	}
	if c.Facility == "" {
		c.Facility = d.Facility
	}
	if c.Severity == "" {
		c.Severity = d.Severity
	}
	if c.AppName == "" {
		c.AppName = d.AppName
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = d.WriteTimeout
	}
	if c.Address == "" && c.Transport == "unix" {
		c.Address = "/dev/log"
	}
	if c.Framing == "" && (c.Transport == "tcp" || c.Transport == "tls" || c.Transport == "unix_stream") {
		c.Framing = FramingOctetCounting
	}
	if c.Hostname == "" {
		if h, err := os.Hostname(); err == nil {
			c.Hostname = h
		}
	}
	if c.MaxMessageBytes == 0 {
		switch c.Transport {
		case "udp", "unix":
			c.MaxMessageBytes = 2048
		default:
			c.MaxMessageBytes = 8192
		}
	}
}

// Validate fills in defaults for empty fields and reports the first
// invalid setting.
func (c *Config) Validate() error {
	c.fillDefaults()
	switch c.Transport {
	case "udp", "tcp", "tls", "unix", "unix_stream":
	default:
		return fmt.Errorf("syslog: transport %q: want udp, tcp, tls, unix or unix_stream", c.Transport)
	}
	if c.Address == "" {
		return errors.New("syslog: address is required")
	}
	switch c.Format {
	case FormatRFC5424, FormatRFC3164:
	default:
		return fmt.Errorf("syslog: format %q: want rfc5424 or rfc3164", c.Format)
	}
	switch c.Transport {
	case "udp", "unix":
		if c.Framing != "" {
			return fmt.Errorf("syslog: framing %q: the %s transport sends one record per datagram and takes no framing", c.Framing, c.Transport)
		}
	case "tls":
		if c.Framing != FramingOctetCounting {
			return fmt.Errorf("syslog: framing %q: tls requires octet-counting (RFC 5425 §4.3)", c.Framing)
		}
	default:
		if c.Framing != FramingOctetCounting && c.Framing != FramingLF {
			return fmt.Errorf("syslog: framing %q: want octet-counting or lf", c.Framing)
		}
	}
	if _, ok := facilities[c.Facility]; !ok {
		return fmt.Errorf("syslog: unknown facility %q", c.Facility)
	}
	if _, ok := severities[c.Severity]; !ok && c.Severity != "auto" {
		return fmt.Errorf("syslog: unknown severity %q (want auto or a syslog severity name)", c.Severity)
	}
	if err := checkToken("app_name", c.AppName, 48); err != nil {
		return err
	}
	if c.Format == FormatRFC3164 {
		if len(c.AppName) > 32 {
			return fmt.Errorf("syslog: app_name %q: rfc3164 allows at most 32 characters", c.AppName)
		}
		for _, r := range c.AppName {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
				return fmt.Errorf("syslog: app_name %q: rfc3164 allows letters, digits, '-', '_' and '.'", c.AppName)
			}
		}
	}
	if c.Hostname == "" {
		return errors.New("syslog: hostname is empty and os.Hostname failed")
	}
	if err := checkToken("hostname", c.Hostname, 255); err != nil {
		return err
	}
	if c.MaxMessageBytes < MinMessageBytes {
		return fmt.Errorf("syslog: max_message_bytes %d is below the minimum %d", c.MaxMessageBytes, MinMessageBytes)
	}
	if err := c.TLSFiles.Validate(c.Transport == "tls", "transport tls, not "+c.Transport); err != nil {
		return fmt.Errorf("syslog: %w", err)
	}
	if c.WriteTimeout < 0 {
		return fmt.Errorf("syslog: write_timeout %v is negative", c.WriteTimeout)
	}
	return nil
}

// checkToken checks an RFC 5424 header field: 1..max printable US-ASCII.
func checkToken(name, v string, max int) error {
	if len(v) > max {
		return fmt.Errorf("syslog: %s %q is longer than %d bytes", name, v, max)
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 33 || v[i] > 126 {
			return fmt.Errorf("syslog: %s %q: only printable ASCII without spaces is allowed", name, v)
		}
	}
	return nil
}
