package cloudsync

import (
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/edgefaas/edgefaas/cloudsync/proto"
)

func TestKeychain(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	id := &Identity{DeviceID: proto.DeviceID(pub), Key: key}
	var current *Identity // not enrolled yet
	tests := []struct {
		name, controller, ref string
		enrolled, device      bool
	}{
		{"the controller", "http://127.0.0.1:7070", "127.0.0.1:7070/fn:1", true, true},
		{"before enrolment", "http://127.0.0.1:7070", "127.0.0.1:7070/fn:1", false, false},
		{"another port", "http://127.0.0.1:7070", "127.0.0.1:7071/fn:1", true, false},
		{"another registry", "https://cloud.example", "registry.example.com/fn:1", true, false},
		{"https default port", "https://cloud.example", "cloud.example/team/fn:1", true, true},
		{"https port given", "https://cloud.example:443/", "cloud.example:443/fn@sha256:0000000000000000000000000000000000000000000000000000000000000000", true, true},
		{"no controller", "", "cloud.example/fn:1", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			current = nil
			if tt.enrolled {
				current = id
			}
			kc := Keychain(tt.controller, func() *Identity { return current })
			ref, err := name.ParseReference(tt.ref)
			if err != nil {
				t.Fatal(err)
			}
			auth, err := kc.Resolve(ref.Context())
			if err != nil {
				t.Fatal(err)
			}
			if !tt.device {
				if auth != authn.Anonymous {
					t.Fatalf("got %v, want anonymous", auth)
				}
				return
			}
			cfg, err := auth.Authorization()
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Username != id.DeviceID {
				t.Fatalf("user %q, want %q", cfg.Username, id.DeviceID)
			}
			if err := proto.VerifyRegistryPassword(pub, id.DeviceID, cfg.Password, time.Now()); err != nil {
				t.Fatalf("password: %v", err)
			}
		})
	}
}
