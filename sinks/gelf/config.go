package gelf

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/audisp-enrich/audisp-enrich/sinks"
)

// Config configures one GELF sink ([sink.gelf]). Start from DefaultConfig
// and set Address.
type Config struct {
	// Address is the host:port of the Graylog GELF input.
	Address string `toml:"address"`
	// Transport is "udp" (default; chunked, compressed), "tcp" (one
	// uncompressed message per frame, ended by a NUL byte) or "tls" (the
	// same over TLS).
	Transport string `toml:"transport"`
	// Compression is "auto" (default for udp), "gzip", "zlib" or "none".
	// "auto" sends a message that fits one or two datagrams as plain JSON
	// (two: as two chunks) and gzip-compresses a larger one, so that it
	// needs fewer chunks: GELF UDP inputs tell plain, gzip and zlib
	// messages apart by their first bytes, and compressing a message of
	// one or two kilobytes costs more CPU than all the rest of its sending. "gzip" and "zlib" compress every message. tcp
	// and tls take only "none" (Graylog's TCP input does not decompress).
	Compression string `toml:"compression"`
	// ChunkSize is the largest UDP datagram, chunk header included.
	// Default 1420 (fits an Ethernet MTU; Graylog's own clients use it);
	// 128 to 65467. A message above it is split into at most 128 chunks;
	// one too big even for that is truncated and marked (see docs).
	ChunkSize int `toml:"chunk_size"`
	// Host is the GELF host when the event has no node= name. Default:
	// os.Hostname().
	Host string `toml:"host"`
	// ShortMessage is the short_message template: "{path}" placeholders
	// (dotted paths in the document, "a|b" for the first one present,
	// "label=path" to prefix a label) between literal text. Default
	// DefaultTemplate.
	ShortMessage string `toml:"short_message"`
	// TLSFiles are tls_ca, tls_cert, tls_key and tls_server_name (tls
	// transport only; an empty tls_server_name checks the host of Address).
	sinks.TLSFiles
	// WriteTimeout bounds dialing and each write. Default 5s.
	WriteTimeout time.Duration `toml:"write_timeout"`
}

// DefaultConfig returns the defaults documented on Config (Address empty).
func DefaultConfig() Config {
	return Config{
		Transport:    "udp",
		ChunkSize:    1420,
		ShortMessage: DefaultTemplate,
		WriteTimeout: 5 * time.Second,
	}
}

// Limits of ChunkSize: a chunk must carry data after its 12-byte header,
// and a UDP datagram over IPv4 carries at most 65507 bytes.
const (
	MinChunkSize = 128
	MaxChunkSize = 65467
)

// Validate fills in defaults for empty fields and reports the first
// invalid setting.
func (c *Config) Validate() error {
	d := DefaultConfig()
	if c.Transport == "" {
		c.Transport = d.Transport
	}
	if c.Compression == "" {
		c.Compression = "none"
		if c.Transport == "udp" {
			c.Compression = "auto"
		}
	}
	if c.ChunkSize == 0 {
		c.ChunkSize = d.ChunkSize
	}
	if c.ShortMessage == "" {
		c.ShortMessage = d.ShortMessage
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = d.WriteTimeout
	}
	if c.Host == "" {
		if h, err := os.Hostname(); err == nil {
			c.Host = h
		}
	}
	switch c.Transport {
	case "udp", "tcp", "tls":
	default:
		return fmt.Errorf("gelf: transport %q: want udp, tcp or tls", c.Transport)
	}
	if c.Address == "" {
		return errors.New("gelf: address is required")
	}
	switch c.Compression {
	case "auto", "gzip", "zlib", "none":
	default:
		return fmt.Errorf("gelf: compression %q: want auto, gzip, zlib or none", c.Compression)
	}
	if c.Transport != "udp" && c.Compression != "none" {
		return fmt.Errorf("gelf: compression %q: the %s transport sends uncompressed frames (want none)", c.Compression, c.Transport)
	}
	if c.ChunkSize < MinChunkSize || c.ChunkSize > MaxChunkSize {
		return fmt.Errorf("gelf: chunk_size %d: want %d to %d", c.ChunkSize, MinChunkSize, MaxChunkSize)
	}
	if c.Host == "" {
		return errors.New("gelf: host is empty and os.Hostname failed")
	}
	if _, err := parseTemplate(c.ShortMessage); err != nil {
		return fmt.Errorf("gelf: %w", err)
	}
	if err := c.TLSFiles.Validate(c.Transport == "tls", "transport tls, not "+c.Transport); err != nil {
		return fmt.Errorf("gelf: %w", err)
	}
	if c.WriteTimeout < 0 {
		return fmt.Errorf("gelf: write_timeout %v is negative", c.WriteTimeout)
	}
	return nil
}
