package sinks

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// TLSFiles are the client TLS settings of a network sink's table (tls_ca,
// tls_cert, tls_key, tls_server_name, tls_insecure_skip_verify).
type TLSFiles struct {
	// CA is a PEM file of the certificates that may sign the server's;
	// empty means the system roots.
	CA string
	// Cert and Key are the PEM client certificate and key (both or none).
	Cert, Key string
	// ServerName is checked against the server's certificate; empty
	// leaves it to the dialer (the host dialled).
	ServerName string
	// InsecureSkipVerify turns certificate checks off (tests only).
	InsecureSkipVerify bool
}

// ClientTLS reads the files of f and returns a client config for TLS 1.2
// or later. This is the one place the sinks build TLS settings, so they
// are read once, when the sink is built: a reload that keeps the sink
// keeps the certificates it loaded. Errors name the setting and the file.
func ClientTLS(f TLSFiles) (*tls.Config, error) {
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         f.ServerName,
		InsecureSkipVerify: f.InsecureSkipVerify, //nolint:gosec // opt-in, documented as test only
	}
	if f.CA != "" {
		pem, err := os.ReadFile(f.CA)
		if err != nil {
			return nil, fmt.Errorf("tls_ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls_ca: %s holds no PEM certificate", f.CA)
		}
		tc.RootCAs = pool
	}
	if f.Cert != "" || f.Key != "" {
		cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
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
