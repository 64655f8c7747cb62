package kafka

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
	"github.com/audisp-enrich/audisp-enrich/sinks"
)

// TestTLS produces over mutual TLS (CA file, client certificate, server
// name override) and consumes over TLS with kcat.
func TestTLS(t *testing.T) {
	testsupport.SkipShort(t, "reads back with kcat, the independent Kafka consumer")
	p := newPKI(t)
	const topic = "tls"
	_, addr := startCluster(t, kfake.SeedTopics(1, topic), kfake.TLS(p.serverTLS))
	cfg := testConfig(addr, topic)
	cfg.TLS = true
	cfg.TLSCA = p.caFile
	cfg.TLSCert, cfg.TLSKey = p.clientCert, p.clientKey
	cfg.TLSServerName = "kafka.test"
	s, _ := newSink(t, cfg)
	batch := []sinks.Message{event(1, "web1", "audit", 10), event(2, "web1", "audit", 10)}
	if err := s.Write(context.Background(), batch); err != nil {
		t.Fatalf("Write over TLS: %v", err)
	}
	got := kcat(t, addr, topic, "-X", "security.protocol=ssl", "-X", "ssl.ca.location="+p.caFile,
		"-X", "ssl.certificate.location="+p.clientCert, "-X", "ssl.key.location="+p.clientKey)
	if len(got) != 2 {
		t.Fatalf("kcat read %d over TLS, want 2", len(got))
	}
	for i, c := range got {
		if *c.Payload != string(batch[i].Value) {
			t.Fatalf("message %d differs", i)
		}
		validateEvent(t, *c.Payload)
	}

	// The wrong CA, a missing client certificate and a wrong server
	// name must each fail to connect.
	bad := map[string]func(*Config){
		"other CA":          func(c *Config) { c.TLSCA = p.otherCAFile },
		"no client cert":    func(c *Config) { c.TLSCert, c.TLSKey = "", "" },
		"wrong server name": func(c *Config) { c.TLSServerName = "evil.test" },
	}
	for name, mod := range bad {
		c := cfg
		mod(&c)
		c.DialTimeout = time.Second
		s, err := New(t.Name()+name, c, nil, nil)
		if err != nil {
			t.Fatalf("%s: New: %v", name, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		start := time.Now()
		err = s.Connect(ctx)
		cancel()
		if err == nil {
			t.Fatalf("%s: Connect succeeded", name)
		}
		t.Logf("%s: Connect failed after %s: %v", name, time.Since(start), err)
		_ = s.Close(context.Background())
	}

	// tls_insecure_skip_verify connects despite an unknown CA, with a
	// warning.
	insecure := cfg
	insecure.TLSCA = p.otherCAFile
	insecure.TLSInsecureSkipVerify = true
	is, logs := newSink(t, insecure)
	if err := is.Write(context.Background(), batch[:1]); err != nil {
		t.Fatalf("Write with verification off: %v", err)
	}
	if !strings.Contains(logs.String(), "verification is disabled") {
		t.Fatalf("no warning about tls_insecure_skip_verify in %q", logs)
	}
}

// TestSASL authenticates with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 (the
// SCRAM client is ours), consumes with franz-go using the same mechanism
// (kcat cannot authenticate to kfake, see kgoConsume), and checks that a
// wrong password fails without the password in errors or logs.
func TestSASL(t *testing.T) {
	const user, pass = "alice", "pw-Zq8-never-log-me"
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mech, func(t *testing.T) {
			topic := "sasl-" + strings.ToLower(mech)
			_, addr := startCluster(t, kfake.SeedTopics(1, topic), kfake.EnableSASL(), kfake.Superuser(mech, user, pass))
			cfg := testConfig(addr, topic)
			cfg.SASLMechanism, cfg.SASLUser, cfg.SASLPassword = mech, user, Secret(pass)
			s, logs := newSink(t, cfg)
			if err := s.Write(context.Background(), []sinks.Message{event(1, "web1", "audit", 10)}); err != nil {
				t.Fatalf("Write: %v", err)
			}
			got := kgoConsume(t, addr, topic, 1, kgo.SASL(saslMechanism(mech, user, pass)))
			if len(got) != 1 {
				t.Fatalf("kcat read %d, want 1", len(got))
			}
			validateEvent(t, *got[0].Payload)

			wrong := cfg
			wrong.SASLPassword = "wrong-" + Secret(pass)
			wrong.DialTimeout = time.Second
			ws, err := New(t.Name()+"wrong", wrong, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ws.Close(context.Background())
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err = ws.Connect(ctx)
			if err == nil {
				t.Fatal("Connect with a wrong password succeeded")
			}
			for _, text := range []string{err.Error(), logs.String(), fmt.Sprintf("%v %+v %#v", cfg, cfg, cfg)} {
				if strings.Contains(text, pass) {
					t.Fatalf("password leaked: %s", text)
				}
			}
		})
	}
}

// TestSASLOverTLS combines SCRAM-SHA-512 with TLS (SASL_SSL).
func TestSASLOverTLS(t *testing.T) {
	p := newPKI(t)
	p.serverTLS.ClientAuth = 0 // server-authenticated TLS only
	const topic, user, pass = "sasl-ssl", "bob", "another-secret"
	_, addr := startCluster(t, kfake.SeedTopics(1, topic), kfake.TLS(p.serverTLS),
		kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", user, pass))
	cfg := testConfig(addr, topic)
	cfg.TLS, cfg.TLSCA = true, p.caFile
	cfg.SASLMechanism, cfg.SASLUser, cfg.SASLPassword = "SCRAM-SHA-512", user, Secret(pass)
	s, _ := newSink(t, cfg)
	if err := s.Write(context.Background(), []sinks.Message{event(1, "web1", "audit", 10)}); err != nil {
		t.Fatalf("Write: %v", err)
	}
	got := kgoConsume(t, addr, topic, 1, kgo.SASL(saslMechanism("SCRAM-SHA-512", user, pass)),
		kgo.DialTLSConfig(&tls.Config{RootCAs: p.caPool, ServerName: "kafka.test", MinVersion: tls.VersionTLS12}))
	if len(got) != 1 {
		t.Fatalf("kcat read %d, want 1", len(got))
	}
	validateEvent(t, *got[0].Payload)
}

func saslMechanism(mech, user, pass string) sasl.Mechanism {
	switch mech {
	case "PLAIN":
		return plain.Auth{User: user, Pass: pass}.AsMechanism()
	case "SCRAM-SHA-256":
		return scram.Auth{User: user, Pass: pass}.AsSha256Mechanism()
	default:
		return scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()
	}
}
