package audit

import (
	"encoding/hex"
	"strings"
	"testing"
)

// TestSockaddrByteOrder: sa_family is written in the byte order of the
// machine that logged the record. laurel's record-bind-ipv4-bigendian.txt
// (ppc64, arch=80000015, nc -l -p 55555) gave family "512": the decoder
// read 0002 as little-endian. Each big-endian value has its little-endian
// twin, which must decode the same.
func TestSockaddrByteOrder(t *testing.T) {
	var p Parser
	r, err := p.Parse("type=SOCKADDR msg=audit(1708028025.033:10): saddr=0002D903000000000000000000000000")
	if err != nil {
		t.Fatal(err)
	}
	real, _ := r.Get("saddr")
	v6 := "0050" + "00000000" + "20010DB8000000000000000000000001" + "00000000"
	path := strings.ToUpper(hex.EncodeToString([]byte("/run/systemd/notify"))) + "00"
	cases := []struct {
		name, be, le string
		want         Sockaddr
	}{
		{"inet (ppc64 bind)", real, "0200D903000000000000000000000000", Sockaddr{Family: "inet", Address: "0.0.0.0", Port: 55555}},
		{"inet6", "000A" + v6, "0A00" + v6, Sockaddr{Family: "inet6", Address: "2001:db8::1", Port: 80}},
		{"unix", "0001" + path, "0100" + path, Sockaddr{Family: "unix", Port: -1, Path: "/run/systemd/notify"}},
		{"unix abstract", "000100616263", "010000616263", Sockaddr{Family: "unix", Port: -1, Path: "@abc"}},
		{"netlink", "0010" + "0000" + "00000000" + "00000000", "1000" + "0000" + "00000000" + "00000000", Sockaddr{Family: "netlink", Port: -1}},
		{"AF_UNSPEC", "0000", "0000", Sockaddr{Family: "0", Port: -1}},
		// no byte of the two is 0: not a family, read as little-endian
		{"not a family", "0102", "0102", Sockaddr{Family: "513", Port: -1}},
	}
	for _, c := range cases {
		for _, in := range []string{c.be, c.le} {
			got, ok := DecodeSockaddr(in)
			if !ok || got != c.want {
				t.Errorf("%s: DecodeSockaddr(%s) = %+v, %v; want %+v", c.name, in, got, ok, c.want)
			}
		}
	}
}
