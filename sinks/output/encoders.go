package output

import (
	"fmt"
	"strings"

	"github.com/audisp-enrich/audisp-enrich/conf"
	"github.com/audisp-enrich/audisp-enrich/plugin/audit"
	"github.com/audisp-enrich/audisp-enrich/sinks/ecs"
	"github.com/audisp-enrich/audisp-enrich/sinks/encode"
)

// encoderKey names the encoder a sink uses. Sinks with the same key share
// one encoding of each document. This is the one place that maps a sink's
// settings to its encoder: the encoding, then for the ecs profile its
// options ("json/ecs/o1r0"). The audit text has no profile.
func encoderKey(sc *conf.SinkConfig) string {
	if sc.Encoding == "audit" || sc.Profile != "ecs" {
		return sc.Encoding
	}
	return fmt.Sprintf("%s/ecs/o%dr%d", sc.Encoding, b2i(sc.Original), b2i(sc.References))
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// newEncoder returns a new Encoder for key (see encoderKey). host names the
// origin in the audit text, and is host.name in ecs documents, of events
// that have no node= of their own.
func newEncoder(key, host string) encode.Encoder {
	enc, profile, _ := strings.Cut(key, "/")
	format := encode.JSON
	switch enc {
	case "audit":
		return encode.AuditText{Host: host}
	case "msgpack":
		format = encode.Msgpack
	}
	if strings.HasPrefix(profile, "ecs/") {
		return &ecsEncoder{opts: ecs.Options{Original: strings.Contains(profile, "o1"), References: strings.Contains(profile, "r1"), Host: host}, format: format}
	}
	return &encode.Full{Format: format}
}

// ecsEncoder writes the ecs profile (sinks/ecs) in JSON or msgpack.
type ecsEncoder struct {
	opts   ecs.Options
	format encode.Format
	w      encode.Writer
}

func (e *ecsEncoder) Append(dst []byte, ev *audit.Event) []byte {
	e.w.Reset(e.format, dst)
	ecs.Write(&e.w, ev, e.opts)
	e.w.End()
	dst, e.w.B = e.w.B, nil
	return dst
}
