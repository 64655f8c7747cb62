package sinks

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// TLSFiles are the client TLS settings that every TLS client table has
// (the syslog, gelf and kafka sinks, the fleet connection): tls_ca,
// tls_cert, tls_key and tls_server_name. Config structs embed it, so
// the keys are declared, documented and checked (Validate) here only.
type TLSFiles struct {
	// TLSCA is a PEM file of the CA certificates that verify the server;
	// empty means the system roots.
	TLSCA string `toml:"tls_ca"`
	// TLSCert and TLSKey are the PEM client certificate and key for
	// mutual TLS; set both or neither.
	TLSCert string `toml:"tls_cert"`
	TLSKey  string `toml:"tls_key"`
	// TLSServerName is the name checked in the server certificate; empty
	// leaves it to the dialer (the host dialled) unless the sink
	// documents another default.
	TLSServerName string `toml:"tls_server_name"`
}

// Set reports whether any of the settings is set.
func (f TLSFiles) Set() bool {
	return f.TLSCA != "" || f.TLSCert != "" || f.TLSKey != "" || f.TLSServerName != ""
}

// Validate checks the settings of a table whose TLS is on or off
// (enabled): tls_cert and tls_key go together, and no tls_* key is set
// when TLS is off. need says what turns TLS on, for the message
// ("transport tls, not udp", "tls = true"). It returns the first problem.
func (f TLSFiles) Validate(enabled bool, need string) error {
	if !enabled && f.Set() {
		return fmt.Errorf("tls_* options need %s", need)
	}
	if (f.TLSCert == "") != (f.TLSKey == "") {
		return errors.New("tls_cert and tls_key must be set together")
	}
	return nil
}

// ClientTLS reads the files of f and returns a client config for TLS 1.2
// or later; insecureSkipVerify turns certificate checks off (tests only).
// This is the one place the sinks build TLS settings, so they are read
// once, when the sink is built: a reload that keeps the sink keeps the
// certificates it loaded. Errors name the setting and the file.
func ClientTLS(f TLSFiles, insecureSkipVerify bool) (*tls.Config, error) {
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         f.TLSServerName,
		InsecureSkipVerify: insecureSkipVerify, //nolint:gosec // opt-in, documented as test only
	}
	if f.TLSCA != "" {
		pem, err := os.ReadFile(f.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("tls_ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls_ca: %s holds no PEM certificate", f.TLSCA)
		}
		tc.RootCAs = pool
	}
	if f.TLSCert != "" || f.TLSKey != "" {
		cert, err := tls.LoadX509KeyPair(f.TLSCert, f.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("tls_cert, tls_key: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// DeliveredFirst is the error of a Write that delivered the first n
// messages of its batch in order and then failed with err: err itself
// when n is 0, otherwise a *PartialError naming indexes 0..n-1.
func DeliveredFirst(n int, err error) error {
	if n <= 0 {
		return err
	}
	p := &PartialError{Delivered: make([]int, n), Err: err}
	for i := range p.Delivered {
		p.Delivered[i] = i
	}
	return p
}
