package proto

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/edgefaas/edgefaas/errdefs"
)

func TestRegistryPassword(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	otherPub, otherKey, _ := ed25519.GenerateKey(nil)
	id, other := DeviceID(pub), DeviceID(otherPub)
	now := time.Unix(1_700_000_000, 0)
	good := RegistryPassword(key, id, now)
	tests := []struct {
		name     string
		pub      ed25519.PublicKey
		id, pass string
		now      time.Time
		want     error
	}{
		{"fresh", pub, id, good, now, nil},
		{"4m59s late", pub, id, good, now.Add(RegistrySkew - time.Second), nil},
		{"clock 5m behind", pub, id, good, now.Add(-RegistrySkew), nil},
		{"expired", pub, id, good, now.Add(RegistrySkew + time.Second), errdefs.ErrPermission},
		{"from the future", pub, id, good, now.Add(-RegistrySkew - time.Second), errdefs.ErrPermission},
		{"another device's id", pub, other, good, now, errdefs.ErrPermission},
		{"another key", otherPub, id, good, now, errdefs.ErrPermission},
		{"signed by another key", pub, id, RegistryPassword(otherKey, id, now), now, errdefs.ErrPermission},
		{"time changed", pub, id, strings.Replace(good, "v1.1700000000.", "v1.1700000001.", 1), now, errdefs.ErrPermission},
		{"leading zero", pub, id, strings.Replace(good, "v1.", "v1.0", 1), now, errdefs.ErrInvalid},
		{"v2", pub, id, "v2" + good[2:], now, errdefs.ErrInvalid},
		{"no signature", pub, id, "v1.1700000000.", now, errdefs.ErrInvalid},
		{"negative time", pub, id, "v1.-1." + good[len("v1.1700000000."):], now, errdefs.ErrInvalid},
		{"padded base64", pub, id, good + "==", now, errdefs.ErrInvalid},
		{"empty", pub, id, "", now, errdefs.ErrInvalid},
		{"short key", pub[:10], id, good, now, errdefs.ErrInvalid},
		{"huge", pub, id, "v1." + strings.Repeat("1", 1000), now, errdefs.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyRegistryPassword(tt.pub, tt.id, tt.pass, tt.now)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}
