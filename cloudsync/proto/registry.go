package proto

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/edgefaas/edgefaas/errdefs"
)

// RegistrySkew is how far a registry credential's time may be from the
// controller's clock, either way.
const RegistrySkew = 5 * time.Minute

// registryContext separates these signatures from the link's challenge and
// any other use of the device key.
const registryContext = "edgefaas registry v1\n"

// RegistryMessage is what a device signs to read from the controller's
// registry: a fixed context, its device id and the time in unix seconds.
func RegistryMessage(deviceID string, unix int64) []byte {
	m := make([]byte, 0, len(registryContext)+len(deviceID)+21)
	m = append(m, registryContext...)
	m = append(m, deviceID...)
	m = append(m, '\n')
	return strconv.AppendInt(m, unix, 10)
}

// RegistryPassword is the password a device gives (with its device id as
// the user name) in HTTP Basic auth to the controller's registry:
// "v1.<unix seconds>.<base64url signature of RegistryMessage>".
//
// A signed time rather than a token fetched from the controller: it is
// stateless on both ends (nothing to store, expire or revoke beyond the
// device itself), needs no extra round trip before a pull, and the key
// never leaves the device. The price is a replay window: a credential
// seen in flight (TLS makes that hard) opens reads, and only reads, for
// RegistrySkew either side of its time. A revoked device is refused at
// once, whatever the credential's time.
func RegistryPassword(key ed25519.PrivateKey, deviceID string, now time.Time) string {
	unix := now.Unix()
	sig := ed25519.Sign(key, RegistryMessage(deviceID, unix))
	return "v1." + strconv.FormatInt(unix, 10) + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// VerifyRegistryPassword checks a password made by RegistryPassword for
// deviceID with the key whose public half is pub: well formed
// (ErrInvalid), signed by that key for that device and within
// RegistrySkew of now (ErrPermission).
func VerifyRegistryPassword(pub ed25519.PublicKey, deviceID, password string, now time.Time) error {
	// Bounded before any work: a valid one is 3+20+1+86 bytes at most.
	if len(password) > 128 {
		return fmt.Errorf("registry credential: %d bytes: %w", len(password), errdefs.ErrInvalid)
	}
	rest, ok := strings.CutPrefix(password, "v1.")
	if !ok {
		return fmt.Errorf("registry credential: not v1: %w", errdefs.ErrInvalid)
	}
	ts, sig64, ok := strings.Cut(rest, ".")
	if !ok || !allDigits(ts) || len(ts) > 19 {
		return fmt.Errorf("registry credential: malformed time: %w", errdefs.ErrInvalid)
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	// One spelling per time (no leading zeros): what was signed is the
	// canonical form, and a credential has exactly one accepted text.
	if err != nil || strconv.FormatInt(unix, 10) != ts {
		return fmt.Errorf("registry credential: malformed time: %w", errdefs.ErrInvalid)
	}
	sig, err := base64.RawURLEncoding.Strict().DecodeString(sig64)
	// The decoder skips \r and \n: compare with the canonical text so
	// that no other spelling of a credential is accepted.
	if err != nil || len(sig) != ed25519.SignatureSize || base64.RawURLEncoding.EncodeToString(sig) != sig64 {
		return fmt.Errorf("registry credential: malformed signature: %w", errdefs.ErrInvalid)
	}
	// ed25519.Verify panics on a key of the wrong length.
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("registry credential: device key of %d bytes: %w", len(pub), errdefs.ErrInvalid)
	}
	if !ed25519.Verify(pub, RegistryMessage(deviceID, unix), sig) {
		return fmt.Errorf("registry credential: bad signature for %s: %w", deviceID, errdefs.ErrPermission)
	}
	// Compared in seconds: a time far from now cannot overflow a Duration.
	if d := now.Unix() - unix; d > int64(RegistrySkew/time.Second) || d < -int64(RegistrySkew/time.Second) {
		return fmt.Errorf("registry credential: made at %s, %ds from now, outside %s: %w",
			time.Unix(unix, 0).UTC().Format(time.RFC3339), d, RegistrySkew, errdefs.ErrPermission)
	}
	return nil
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
