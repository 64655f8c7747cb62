package remote

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestHeaderBytes(t *testing.T) {
	// Byte layouts from audit-userspace lib/private.h (AUDIT_RMW_PACK_HEADER).
	cases := []struct {
		h    Header
		want string
	}{
		{Header{Type: TypeMessage, Length: 300, Seq: 2}, "fe0000ff0000000000002c0102000000"},
		{Header{Type: TypeAck, Seq: 2}, "fe0000ff000000000040000002000000"},
		{Header{Type: TypeHeartbeat, Seq: 0x01020304}, "fe0000ff000001000000000004030201"},
	}
	for _, c := range cases {
		got := hex.EncodeToString(c.h.Append(nil))
		if got != c.want {
			t.Errorf("%+v: got %s want %s", c.h, got, c.want)
		}
		back, err := DecodeHeader(c.h.Append(nil))
		if err != nil || back != c.h {
			t.Errorf("round trip %+v: %+v %v", c.h, back, err)
		}
	}
}

func TestDecodeHeaderErrors(t *testing.T) {
	good := Header{Type: TypeAck, Seq: 9}.Append(nil)
	bad := func(mut func(b []byte) []byte) []byte { return mut(bytes.Clone(good)) }
	for name, b := range map[string][]byte{
		"short":   good[:15],
		"magic":   bad(func(b []byte) []byte { b[0] = 0xff; return b }),
		"version": bad(func(b []byte) []byte { b[4] = 1; return b }),
		"length":  bad(func(b []byte) []byte { b[10], b[11] = 0x0b, 0x23; return b }), // 8971
	} {
		if _, err := DecodeHeader(b); !errors.Is(err, ErrBadHeader) {
			t.Errorf("%s: got %v, want ErrBadHeader", name, err)
		}
	}
}

// FuzzDecodeHeader: DecodeHeader never panics, and what it accepts
// re-encodes to the same 16 bytes.
func FuzzDecodeHeader(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/reply_*.bin")
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := DecodeHeader(b)
		if err != nil {
			if !errors.Is(err, ErrBadHeader) {
				t.Fatalf("error %v does not wrap ErrBadHeader", err)
			}
			return
		}
		if h.Length > MaxMessageLength {
			t.Fatalf("accepted length %d", h.Length)
		}
		if got := h.Append(nil); !bytes.Equal(got, b[:HeaderSize]) {
			t.Fatalf("re-encoded %x, input %x", got, b[:HeaderSize])
		}
	})
}
