// Package proto is the wire protocol between an edgefaas agent and the cloud
// controller: the versioned JSON envelope carried in websocket text frames,
// the message bodies, the enrolment request, the signed challenge that
// proves a device's key, and the limits both ends enforce.
//
// It is a leaf: the agent's link (package cloudsync) and the controller
// both import it, and it imports neither. It does not dial, listen or store
// anything.
package proto

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"time"

	"github.com/edgefaas/edgefaas/errdefs"
)

// Version is the protocol version this build speaks. A frame of another
// version is refused: the controller and the agent upgrade the protocol by
// adding a version, never by changing what one means.
const Version = 1

// Limits.
const (
	// MaxFrame is the largest frame either end reads; a larger one closes
	// the link. A usage batch of MaxBatch records fits with room to spare.
	MaxFrame = 1 << 20
	// MaxBatch is the most usage records in one usage message.
	MaxBatch = 1000
	// MaxEnrollBody bounds the enrolment request's body.
	MaxEnrollBody = 16 << 10
	// NonceSize is the challenge's length in bytes.
	NonceSize = 32
)

// Message types. Who sends each is in its comment.
const (
	TypeChallenge = "challenge" // controller, first frame: a nonce to sign
	TypeAuth      = "auth"      // agent: device id and the nonce's signature
	TypeWelcome   = "welcome"   // controller: the device is known, the link is up
	TypeHello     = "hello"     // agent, after welcome: inventory
	TypeHealth    = "health"    // agent, periodically
	TypeUsage     = "usage"     // agent: a batch of activation records
	TypeUsageAck  = "usage_ack" // controller: records up to a seq are stored
	TypeError     = "error"     // either: why the link is being closed
	TypeDesired   = "desired"   // controller: the functions the device should run
	TypeStatus    = "status"    // agent: the state of the functions the cloud placed
)

var knownTypes = map[string]bool{
	TypeChallenge: true, TypeAuth: true, TypeWelcome: true, TypeHello: true,
	TypeHealth: true, TypeUsage: true, TypeUsageAck: true, TypeError: true,
	TypeDesired: true, TypeStatus: true,
}

// Envelope is one frame: {"v":1,"type":"usage","id":"...","body":{...}}.
// The id names the message so that an answer (usage_ack) can refer to it.
type Envelope struct {
	V    int             `json:"v"`
	Type string          `json:"type"`
	ID   string          `json:"id,omitempty"`
	Body json.RawMessage `json:"body,omitempty"`
}

// Encode builds a frame of the current version.
func Encode(typ, id string, body any) ([]byte, error) {
	var raw json.RawMessage
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("proto: encode %s body: %w", typ, err)
		}
		raw = b
	}
	b, err := json.Marshal(Envelope{V: Version, Type: typ, ID: id, Body: raw})
	if err != nil {
		return nil, fmt.Errorf("proto: encode %s: %w", typ, err)
	}
	if len(b) > MaxFrame {
		return nil, fmt.Errorf("proto: %s frame of %d bytes, limit %d: %w", typ, len(b), MaxFrame, errdefs.ErrTooLarge)
	}
	return b, nil
}

// Decode parses a frame. It refuses frames over MaxFrame (ErrTooLarge),
// other versions, unknown types, unknown fields and trailing data
// (ErrInvalid). The body is left raw: see DecodeBody.
func Decode(frame []byte) (Envelope, error) {
	if len(frame) > MaxFrame {
		return Envelope{}, fmt.Errorf("proto: frame of %d bytes, limit %d: %w", len(frame), MaxFrame, errdefs.ErrTooLarge)
	}
	var e Envelope
	if err := strictUnmarshal(frame, &e); err != nil {
		return Envelope{}, fmt.Errorf("proto: frame: %v: %w", err, errdefs.ErrInvalid)
	}
	switch {
	case e.V != Version:
		return Envelope{}, fmt.Errorf("proto: version %d, this end speaks %d: %w", e.V, Version, errdefs.ErrInvalid)
	case !knownTypes[e.Type]:
		return Envelope{}, fmt.Errorf("proto: unknown message type %q: %w", e.Type, errdefs.ErrInvalid)
	case len(e.ID) > 64:
		return Envelope{}, fmt.Errorf("proto: message id of %d bytes: %w", len(e.ID), errdefs.ErrInvalid)
	}
	return e, nil
}

// DecodeBody parses e's body into T, strictly, and validates it when T has
// a Validate method.
func DecodeBody[T any](e Envelope) (T, error) {
	var v T
	if len(e.Body) == 0 {
		return v, fmt.Errorf("proto: %s without a body: %w", e.Type, errdefs.ErrInvalid)
	}
	if err := strictUnmarshal(e.Body, &v); err != nil {
		return v, fmt.Errorf("proto: %s body: %v: %w", e.Type, err, errdefs.ErrInvalid)
	}
	if val, ok := any(&v).(interface{ Validate() error }); ok {
		if err := val.Validate(); err != nil {
			return v, fmt.Errorf("proto: %s: %w", e.Type, err)
		}
	}
	return v, nil
}

func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("data after the JSON value")
	}
	return nil
}

// DeviceID is the id a device's public key gives it: "dev-" and the first
// 16 bytes of the key's SHA-256, in hex. Both ends derive it, so that an id
// cannot be claimed for another key.
func DeviceID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return "dev-" + hex.EncodeToString(sum[:16])
}

var deviceIDPattern = regexp.MustCompile(`^dev-[0-9a-f]{32}$`)

// ValidDeviceID reports whether id is shaped as DeviceID makes them.
func ValidDeviceID(id string) bool {
	return deviceIDPattern.MatchString(id)
}

// challengeContext separates these signatures from any other use of the key.
const challengeContext = "edgefaas link v1 challenge\n"

// ChallengeMessage is what a device signs to answer a challenge: a fixed
// context, its device id and the nonce. Binding the id means a signature
// cannot be replayed for another device; the nonce, never reused by the
// controller, means it cannot be replayed at all.
func ChallengeMessage(deviceID string, nonce []byte) []byte {
	m := make([]byte, 0, len(challengeContext)+len(deviceID)+1+len(nonce))
	m = append(m, challengeContext...)
	m = append(m, deviceID...)
	m = append(m, '\n')
	return append(m, nonce...)
}

// Conn is the part of a websocket connection (gorilla's *websocket.Conn)
// that ReadFrame and WriteFrame use; the package does not import a
// websocket library itself.
type Conn interface {
	ReadMessage() (messageType int, p []byte, err error)
	WriteMessage(messageType int, data []byte) error
	SetWriteDeadline(t time.Time) error
}

// textMessage is RFC 6455's text frame opcode, which gorilla uses as its
// message type.
const textMessage = 1

// ReadFrame reads one frame and decodes it. A binary frame or one that does
// not decode is ErrInvalid; an error of the connection (including a frame
// over the connection's read limit) is returned as it is.
func ReadFrame(c Conn) (Envelope, error) {
	typ, b, err := c.ReadMessage()
	if err != nil {
		return Envelope{}, err
	}
	if typ != textMessage {
		return Envelope{}, fmt.Errorf("proto: binary frame: %w", errdefs.ErrInvalid)
	}
	return Decode(b)
}

// WriteFrame encodes a message and writes it as one text frame, within
// timeout.
func WriteFrame(c Conn, timeout time.Duration, typ, id string, body any) error {
	b, err := Encode(typ, id, body)
	if err != nil {
		return err
	}
	_ = c.SetWriteDeadline(time.Now().Add(timeout))
	return c.WriteMessage(textMessage, b)
}
