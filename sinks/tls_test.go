package sinks

import "testing"

// TestTLSFilesValidate: every tls_* key counts when TLS is off, and
// tls_cert and tls_key go together.
func TestTLSFilesValidate(t *testing.T) {
	for _, tc := range []struct {
		f       TLSFiles
		enabled bool
		want    string
	}{
		{TLSFiles{}, false, ""},
		{TLSFiles{}, true, ""},
		{TLSFiles{TLSCA: "ca", TLSServerName: "h"}, true, ""},
		{TLSFiles{TLSCert: "c", TLSKey: "k"}, true, ""},
		{TLSFiles{TLSCA: "ca"}, false, "tls_* options need X"},
		{TLSFiles{TLSCert: "c", TLSKey: "k"}, false, "tls_* options need X"},
		{TLSFiles{TLSKey: "k"}, false, "tls_* options need X"},
		{TLSFiles{TLSServerName: "h"}, false, "tls_* options need X"},
		{TLSFiles{TLSCert: "c"}, true, "tls_cert and tls_key must be set together"},
		{TLSFiles{TLSKey: "k"}, true, "tls_cert and tls_key must be set together"},
	} {
		err := tc.f.Validate(tc.enabled, "X")
		if got := ""; err != nil {
			got = err.Error()
			if got != tc.want {
				t.Errorf("%+v enabled=%v: %q, want %q", tc.f, tc.enabled, got, tc.want)
			}
		} else if tc.want != "" {
			t.Errorf("%+v enabled=%v: accepted, want %q", tc.f, tc.enabled, tc.want)
		}
	}
}
