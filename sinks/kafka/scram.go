package kafka

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
)

// scramHash selects the SCRAM variant.
type scramHash struct {
	name string
	new  func() hash.Hash
}

var (
	scramSHA256 = scramHash{"SCRAM-SHA-256", sha256.New}
	scramSHA512 = scramHash{"SCRAM-SHA-512", sha512.New}
)

// Bounds on the server's iteration count: below the RFC 7677 minimum is
// weak, far above it would let a hostile server stall the client.
const (
	scramMinIterations = 4096
	scramMaxIterations = 1 << 20
)

// scramClient is the client side of one SCRAM exchange (RFC 5802) as sarama
// drives it: Begin, then Step("") for the client-first message, Step with the
// server-first message, Step with the server-final message. Usernames are
// escaped as the RFC requires; passwords are used as given (no SASLprep, so
// non-ASCII passwords must already be in normalised form). Errors never
// contain the password. Not safe for concurrent use; sarama makes one per
// connection.
type scramClient struct {
	h scramHash

	user, password, authzID string
	nonce                   string
	clientFirstBare         string
	serverSignature         []byte
	step                    int
	done                    bool
}

func newSCRAMClient(h scramHash) *scramClient { return &scramClient{h: h} }

// Begin starts an exchange.
func (c *scramClient) Begin(user, password, authzID string) error {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return fmt.Errorf("scram: nonce: %w", err)
	}
	*c = scramClient{h: c.h, user: user, password: password, authzID: authzID,
		nonce: base64.RawStdEncoding.EncodeToString(b[:])}
	return nil
}

// Step answers the server's challenge.
func (c *scramClient) Step(challenge string) (string, error) {
	c.step++
	switch c.step {
	case 1:
		c.clientFirstBare = "n=" + scramEscape(c.user) + ",r=" + c.nonce
		return c.gs2Header() + c.clientFirstBare, nil
	case 2:
		return c.clientFinal(challenge)
	case 3:
		return "", c.verifyServerFinal(challenge)
	default:
		return "", errors.New("scram: exchange already finished")
	}
}

// Done reports whether the exchange is over.
func (c *scramClient) Done() bool { return c.done }

func (c *scramClient) gs2Header() string {
	if c.authzID == "" {
		return "n,,"
	}
	return "n,a=" + scramEscape(c.authzID) + ","
}

// serverFirst is the parsed server-first message.
type serverFirst struct {
	nonce      string
	salt       []byte
	iterations int
}

// parseServerFirst parses "r=NONCE,s=SALT,i=COUNT[,ext...]".
func parseServerFirst(msg string) (serverFirst, error) {
	var sf serverFirst
	var haveSalt, haveIter bool
	for _, attr := range strings.Split(msg, ",") {
		if len(attr) < 2 || attr[1] != '=' {
			return sf, fmt.Errorf("scram: malformed server-first attribute %q", attr)
		}
		v := attr[2:]
		switch attr[0] {
		case 'r':
			sf.nonce = v
		case 's':
			salt, err := base64.StdEncoding.DecodeString(v)
			if err != nil || len(salt) == 0 {
				return sf, errors.New("scram: bad salt in server-first message")
			}
			sf.salt, haveSalt = salt, true
		case 'i':
			n, err := strconv.Atoi(v)
			if err != nil {
				return sf, fmt.Errorf("scram: bad iteration count %q", v)
			}
			sf.iterations, haveIter = n, true
		case 'e':
			return sf, fmt.Errorf("scram: server error %q", v)
		case 'm':
			return sf, errors.New("scram: server requires an unsupported extension")
		}
	}
	switch {
	case sf.nonce == "" || !haveSalt || !haveIter:
		return sf, errors.New("scram: server-first message lacks nonce, salt or iteration count")
	case sf.iterations < scramMinIterations || sf.iterations > scramMaxIterations:
		return sf, fmt.Errorf("scram: iteration count %d outside [%d, %d]", sf.iterations, scramMinIterations, scramMaxIterations)
	}
	return sf, nil
}

func (c *scramClient) clientFinal(serverFirstMsg string) (string, error) {
	sf, err := parseServerFirst(serverFirstMsg)
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(sf.nonce, c.nonce) || len(sf.nonce) == len(c.nonce) {
		return "", errors.New("scram: server nonce does not extend the client nonce")
	}
	salted, err := pbkdf2.Key(c.h.new, c.password, sf.salt, sf.iterations, c.h.new().Size())
	if err != nil {
		return "", fmt.Errorf("scram: key derivation: %w", err)
	}
	clientKey := c.hmac(salted, "Client Key")
	storedKey := c.h.new()
	storedKey.Write(clientKey)
	withoutProof := "c=" + base64.StdEncoding.EncodeToString([]byte(c.gs2Header())) + ",r=" + sf.nonce
	authMessage := c.clientFirstBare + "," + serverFirstMsg + "," + withoutProof
	clientSig := c.hmac(storedKey.Sum(nil), authMessage)
	proof := make([]byte, len(clientKey))
	subtle.XORBytes(proof, clientKey, clientSig)
	c.serverSignature = c.hmac(c.hmac(salted, "Server Key"), authMessage)
	return withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof), nil
}

func (c *scramClient) verifyServerFinal(msg string) error {
	switch {
	case strings.HasPrefix(msg, "e="):
		return fmt.Errorf("scram: server rejected authentication: %q", msg[2:])
	case !strings.HasPrefix(msg, "v="):
		return errors.New("scram: malformed server-final message")
	}
	v, _, _ := strings.Cut(msg[2:], ",")
	sig, err := base64.StdEncoding.DecodeString(v)
	if err != nil || !hmac.Equal(sig, c.serverSignature) {
		return errors.New("scram: server signature does not verify (server does not know the password)")
	}
	c.done = true
	return nil
}

func (c *scramClient) hmac(key []byte, msg string) []byte {
	m := hmac.New(c.h.new, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// scramEscape escapes a SCRAM saslname (RFC 5802 §5.1).
func scramEscape(s string) string {
	return strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s)
}
