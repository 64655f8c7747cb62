package syslog

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/audisp-enrich/audisp-enrich/plugin/testsupport"
)

// rsyslog is a real rsyslogd started by a test on loopback.
type rsyslog struct {
	dir    string
	raw    string // %rawmsg%, one record per line
	parsed string // parsed fields, one record per line
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	conf   string
	stopFn func() // stops rsyslogd by PID and waits for it
}

// rsyslogInputs says which listeners to open; zero ports are not opened.
type rsyslogInputs struct {
	udp, tcp, tls int
	unix          string // imuxsock datagram socket path
	unixStream    string // imptcp unix stream socket path
	tlsAuth       string // gtls authmode for the tls input, default anon
	certs         *testCerts
}

// startRsyslog writes a config for in into a fresh temp dir and runs
// `rsyslogd -n -f CONF -i PIDFILE` until the test ends (stopped by PID).
func startRsyslog(t testing.TB, in rsyslogInputs) *rsyslog {
	t.Helper()
	return startRsyslogIn(t, t.TempDir(), in)
}

func startRsyslogIn(t testing.TB, dir string, in rsyslogInputs) *rsyslog {
	t.Helper()
	testsupport.SkipShort(t, "starts a real rsyslogd")
	bin, err := exec.LookPath("rsyslogd")
	if err != nil {
		bin = "/usr/sbin/rsyslogd"
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("rsyslogd not found: install the Debian packages rsyslog and rsyslog-gnutls")
		}
	}
	r := &rsyslog{dir: dir, raw: filepath.Join(dir, "raw.log"), parsed: filepath.Join(dir, "parsed.log"), stderr: &bytes.Buffer{}}
	var c strings.Builder
	glob := fmt.Sprintf(`workDirectory=%q maxMessageSize="64k"`, dir)
	if in.tls != 0 {
		glob += fmt.Sprintf(` defaultNetstreamDriver="gtls" defaultNetstreamDriverCAFile=%q defaultNetstreamDriverCertFile=%q defaultNetstreamDriverKeyFile=%q`,
			in.certs.ca, in.certs.serverCert, in.certs.serverKey)
	}
	fmt.Fprintf(&c, "global(%s)\n", glob)
	if in.udp != 0 {
		fmt.Fprintf(&c, "module(load=\"imudp\")\ninput(type=\"imudp\" address=\"127.0.0.1\" port=\"%d\" ruleset=\"r\")\n", in.udp)
	}
	if in.tcp != 0 || in.unixStream != "" {
		c.WriteString("module(load=\"imptcp\")\n")
	}
	if in.tcp != 0 {
		fmt.Fprintf(&c, "input(type=\"imptcp\" address=\"127.0.0.1\" port=\"%d\" ruleset=\"r\")\n", in.tcp)
	}
	if in.unixStream != "" {
		fmt.Fprintf(&c, "input(type=\"imptcp\" path=%q unlink=\"on\" ruleset=\"r\")\n", in.unixStream)
	}
	if in.tls != 0 {
		auth := in.tlsAuth
		if auth == "" {
			auth = "anon"
		}
		fmt.Fprintf(&c, "module(load=\"imtcp\" streamDriver.name=\"gtls\" streamDriver.mode=\"1\" streamDriver.authMode=%q)\n", auth)
		fmt.Fprintf(&c, "input(type=\"imtcp\" address=\"127.0.0.1\" port=\"%d\" ruleset=\"r\")\n", in.tls)
	}
	if in.unix != "" {
		c.WriteString("module(load=\"imuxsock\" sysSock.use=\"off\")\n")
		fmt.Fprintf(&c, "input(type=\"imuxsock\" socket=%q ruleset=\"r\" useSpecialParser=\"off\" parseHostname=\"on\")\n", in.unix)
	}
	c.WriteString(`template(name="raw" type="string" string="%rawmsg%\n")
template(name="parsed" type="string" string="%syslogfacility%|%syslogseverity%|%hostname%|%app-name%|%procid%|%msgid%|%structured-data%|%msg%\n")
`)
	fmt.Fprintf(&c, "ruleset(name=\"r\") {\n action(type=\"omfile\" file=%q template=\"raw\")\n action(type=\"omfile\" file=%q template=\"parsed\")\n}\n", r.raw, r.parsed)
	r.conf = c.String()
	confPath := filepath.Join(dir, "rsyslog.conf")
	if err := os.WriteFile(confPath, []byte(r.conf), 0o600); err != nil {
		t.Fatal(err)
	}
	r.cmd = exec.Command(bin, "-n", "-f", confPath, "-i", filepath.Join(dir, "rsyslogd.pid"))
	r.cmd.Stdout, r.cmd.Stderr = r.stderr, r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start rsyslogd: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = r.cmd.Wait(); close(exited) }()
	t.Cleanup(func() { r.stop(exited) })
	ready := func() bool {
		return (in.udp == 0 || testsupport.Listening("udp", in.udp)) &&
			(in.tcp == 0 || testsupport.Listening("tcp", in.tcp)) &&
			(in.tls == 0 || testsupport.Listening("tcp", in.tls)) &&
			(in.unix == "" || exists(in.unix)) &&
			(in.unixStream == "" || exists(in.unixStream))
	}
	deadline := time.Now().Add(10 * time.Second)
	for !ready() {
		select {
		case <-exited:
			t.Fatalf("rsyslogd exited at startup: %s\nconfig:\n%s", r.stderr, r.conf)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("rsyslogd did not open its inputs within 10s: %s\nconfig:\n%s", r.stderr, r.conf)
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.stopFn = func() { r.stop(exited) }
	return r
}

func (r *rsyslog) stop(exited chan struct{}) {
	if r.cmd.Process == nil {
		return
	}
	select {
	case <-exited:
		return
	default:
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		_ = r.cmd.Process.Kill()
		<-exited
	}
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// lines waits until pred holds for the lines of file (or 10 s pass) and
// returns them.
func waitLines(t testing.TB, file string, pred func([]string) bool) []string {
	t.Helper()
	var lines []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(file)
		// Only whole lines: rsyslog may have written part of the last
		// one (a long record reaches the file in more than one write).
		whole := string(b[:bytes.LastIndexByte(b, '\n')+1])
		lines = strings.Split(strings.TrimSuffix(whole, "\n"), "\n")
		if whole == "" {
			lines = nil
		}
		if pred(lines) {
			return lines
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: condition not met within 10s; content:\n%s", file, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testCerts are PEM files of a CA, a server cert for 127.0.0.1/localhost
// and a client cert, made with crypto/x509.
type testCerts struct {
	ca, serverCert, serverKey, clientCert, clientKey string
}

func makeCerts(t testing.TB) *testCerts {
	t.Helper()
	dir := t.TempDir()
	c := &testCerts{
		ca:         filepath.Join(dir, "ca.pem"),
		serverCert: filepath.Join(dir, "server.pem"),
		serverKey:  filepath.Join(dir, "server-key.pem"),
		clientCert: filepath.Join(dir, "client.pem"),
		clientKey:  filepath.Join(dir, "client-key.pem"),
	}
	now := time.Now()
	caKey := newKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "audisp-enrich test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	writePEM(t, c.ca, "CERTIFICATE", caDER)
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, certPath, keyPath string) {
		k := newKey(t)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			DNSNames:     []string{cn},
			IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		writePEM(t, certPath, "CERTIFICATE", der)
		kder, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		writePEM(t, keyPath, "PRIVATE KEY", kder)
	}
	leaf(2, "localhost", x509.ExtKeyUsageServerAuth, c.serverCert, c.serverKey)
	leaf(3, "client.test", x509.ExtKeyUsageClientAuth, c.clientCert, c.clientKey)
	return c
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
