package remote

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Wire constants of the audisp-remote "managed" protocol (audit-userspace
// lib/private.h). All header fields are little-endian.
const (
	HeaderSize       = 16
	Magic            = 0xff0000fe // FE 00 00 FF on the wire
	HeaderVersion    = 0
	MaxMessageLength = 8970 // MAX_AUDIT_MESSAGE_LENGTH: longest payload auditd accepts

	TypeReplyMask  = 0x40000000
	TypeFatalMask  = 0x20000000
	TypeWarnMask   = 0x10000000
	TypeDetailMask = 0x000FFFFF

	TypeMessage   = 0x00000000
	TypeHeartbeat = 0x00000001
	TypeAck       = 0x40000000
	TypeEnding    = 0x40000001
	TypeDiskLow   = 0x50000001
	TypeDiskFull  = 0x60000001
	TypeDiskError = 0x60000002
)

// Header is one protocol header. Length counts the bytes that follow it.
type Header struct {
	MessageVersion uint8
	Type           uint32
	Length         uint16
	Seq            uint32
}

// Append appends the 16-byte wire form of h to b.
func (h Header) Append(b []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, Magic)
	b = append(b, HeaderVersion, h.MessageVersion)
	b = binary.LittleEndian.AppendUint32(b, h.Type)
	b = binary.LittleEndian.AppendUint16(b, h.Length)
	return binary.LittleEndian.AppendUint32(b, h.Seq)
}

// ErrBadHeader is wrapped by every DecodeHeader error.
var ErrBadHeader = errors.New("bad audisp-remote header")

// DecodeHeader decodes the first HeaderSize bytes of b. It fails (wrapping
// ErrBadHeader) when b is short, the magic or header version is wrong, or
// Length exceeds MaxMessageLength.
func DecodeHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("%w: %d bytes, need %d", ErrBadHeader, len(b), HeaderSize)
	}
	if m := binary.LittleEndian.Uint32(b); m != Magic {
		return Header{}, fmt.Errorf("%w: magic %#08x", ErrBadHeader, m)
	}
	if b[4] != HeaderVersion {
		return Header{}, fmt.Errorf("%w: header version %d", ErrBadHeader, b[4])
	}
	h := Header{
		MessageVersion: b[5],
		Type:           binary.LittleEndian.Uint32(b[6:]),
		Length:         binary.LittleEndian.Uint16(b[10:]),
		Seq:            binary.LittleEndian.Uint32(b[12:]),
	}
	if h.Length > MaxMessageLength {
		return Header{}, fmt.Errorf("%w: length %d > %d", ErrBadHeader, h.Length, MaxMessageLength)
	}
	return h, nil
}

// TypeName names a reply type for logs.
func TypeName(t uint32) string {
	switch t {
	case TypeMessage:
		return "MESSAGE"
	case TypeHeartbeat:
		return "HEARTBEAT"
	case TypeAck:
		return "ACK"
	case TypeEnding:
		return "ENDING"
	case TypeDiskLow:
		return "DISKLOW"
	case TypeDiskFull:
		return "DISKFULL"
	case TypeDiskError:
		return "DISKERROR"
	}
	return fmt.Sprintf("%#08x", t)
}
