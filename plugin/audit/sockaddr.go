package audit

import (
	"encoding/binary"
	"net/netip"
	"strconv"
)

// Sockaddr is a decoded SOCKADDR saddr value.
type Sockaddr struct {
	Family  string // unix, inet, inet6, netlink, or the number
	Address string // IP address for inet/inet6
	Port    int    // -1 when not applicable
	Path    string // unix socket path ("@name" for the abstract namespace)
}

// DecodeSockaddr decodes the hex saddr field of a SOCKADDR record (a raw
// struct sockaddr). ok is false when the value is not hex or too short.
//
// sa_family is in the byte order of the machine that logged the record,
// which may not be this one (a log of s390x or ppc64 replayed on x86_64).
// Every family is below 256, so one of its two bytes is 0: a first byte 0
// and a second one not 0 is a big-endian record, anything else is read as
// little-endian (AF_UNSPEC, 0000, is the same both ways). Ports and
// addresses are in network order on every machine. The other host-order
// fields (netlink's nl_pid and nl_groups, the inet6 scope id) are not
// decoded.
func DecodeSockaddr(hexval string) (Sockaddr, bool) {
	if len(hexval) < 4 || len(hexval)%2 != 0 {
		return Sockaddr{}, false
	}
	b := make([]byte, len(hexval)/2)
	for i := range b {
		hi, ok1 := hexNibble(hexval[2*i])
		lo, ok2 := hexNibble(hexval[2*i+1])
		if !ok1 || !ok2 {
			return Sockaddr{}, false
		}
		b[i] = hi<<4 | lo
	}
	sa := Sockaddr{Port: -1}
	fam := binary.LittleEndian.Uint16(b)
	if b[0] == 0 && b[1] != 0 {
		fam = binary.BigEndian.Uint16(b)
	}
	switch fam {
	case 1:
		sa.Family = "unix"
		p := b[2:]
		abstract := len(p) > 0 && p[0] == 0
		if abstract {
			p = p[1:]
		}
		for i, c := range p {
			if c == 0 {
				p = p[:i]
				break
			}
		}
		sa.Path = string(p)
		if abstract {
			sa.Path = "@" + sa.Path
		}
	case 2:
		sa.Family = "inet"
		if len(b) >= 8 {
			sa.Port = int(binary.BigEndian.Uint16(b[2:]))
			sa.Address = netip.AddrFrom4([4]byte(b[4:8])).String()
		}
	case 10:
		sa.Family = "inet6"
		if len(b) >= 24 {
			sa.Port = int(binary.BigEndian.Uint16(b[2:]))
			sa.Address = netip.AddrFrom16([16]byte(b[8:24])).String()
		}
	case 16:
		sa.Family = "netlink"
	default:
		sa.Family = strconv.Itoa(int(fam))
	}
	return sa, true
}

func hexNibble(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}
