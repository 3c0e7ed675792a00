package proto

import (
	"bytes"
	"crypto/ed25519"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzDecode: no frame makes the decoder panic, anything it accepts is of
// the current version and a known type, re-encodes, and every body type
// decodes or errs without panicking.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		`{"v":1,"type":"usage","id":"a","body":{"records":[{"seq":1,"call_id":"c","function":"f","trigger":"http","start_ns":1,"duration_ns":2,"billed_ms":100,"memory_bytes":1,"kib_ms":1,"cpu_ns":0,"status":"ok","request_bytes":0,"response_bytes":0}]}}`,
		`{"v":1,"type":"usage_ack","id":"a","body":{"up_to":3}}`,
		`{"v":1,"type":"hello","body":{"version":"dev","arch":"arm64","cgroup_mode":"v2","functions":[{"name":"f","version":1,"image_digest":"sha256:00"}]}}`,
		`{"v":1,"type":"auth","body":{"device_id":"dev-00000000000000000000000000000000","signature":"AAAA"}}`,
		`{"v":1,"type":"challenge","body":{"nonce":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}}`,
		`{"v":2,"type":"health"}`,
		`{"v":1,"type":"error","body":{"code":"invalid"}}`,
		`{"v":1,"type":"desired","body":{"functions":[{"revision":2,"repository":"fn","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","spec":{"name":"f","image":"","memory_bytes":1048576}}]}}`,
		`{"v":1,"type":"status","body":{"functions":[{"name":"f","revision":2,"state":"rolled_back","reason":"not ready","serving":1,"at_ms":5}]}}`,
		`[]`, `null`, ``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		e, err := Decode(frame)
		if err != nil {
			return
		}
		if e.V != Version || !knownTypes[e.Type] {
			t.Fatalf("accepted %+v", e)
		}
		again, err := Encode(e.Type, e.ID, e.Body)
		if err != nil && len(frame) < MaxFrame-100 {
			t.Fatalf("re-encode of an accepted frame: %v", err)
		}
		if err == nil {
			if _, err := Decode(again); err != nil && !bytes.Equal(again, frame) {
				t.Fatalf("re-encoded frame refused: %v", err)
			}
		}
		_, _ = DecodeBody[Usage](e)
		_, _ = DecodeBody[UsageAck](e)
		_, _ = DecodeBody[Hello](e)
		_, _ = DecodeBody[Health](e)
		_, _ = DecodeBody[Auth](e)
		_, _ = DecodeBody[Challenge](e)
		_, _ = DecodeBody[Welcome](e)
		_, _ = DecodeBody[Error](e)
		_, _ = DecodeBody[EnrollRequest](e)
		_, _ = DecodeBody[Desired](e)
		_, _ = DecodeBody[Status](e)
	})
}

// FuzzVerifyRegistryPassword: no password makes the check panic, and the
// only passwords it accepts are the exact text RegistryPassword makes for
// the device at a time within the skew.
func FuzzVerifyRegistryPassword(f *testing.F) {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	pub := key.Public().(ed25519.PublicKey)
	id := DeviceID(pub)
	now := time.Unix(1_700_000_000, 0)
	for _, seed := range []string{
		RegistryPassword(key, id, now),
		RegistryPassword(key, id, now.Add(-time.Minute)),
		RegistryPassword(key, id, now.Add(time.Hour)),
		"v1.1700000000.", "v1..", "v1", "", "v1.99999999999999999999.AAAA",
		"v1.1700000000." + strings.Repeat("A", 86),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, password string) {
		if VerifyRegistryPassword(pub, id, password, now) != nil {
			return
		}
		ts, _, _ := strings.Cut(strings.TrimPrefix(password, "v1."), ".")
		unix, err := strconv.ParseInt(ts, 10, 64)
		if err != nil {
			t.Fatalf("accepted %q: time does not parse: %v", password, err)
		}
		if want := RegistryPassword(key, id, time.Unix(unix, 0)); password != want {
			t.Fatalf("accepted %q, which is not the credential %q", password, want)
		}
		if d := now.Unix() - unix; d > 300 || d < -300 {
			t.Fatalf("accepted %q, %ds from now", password, d)
		}
	})
}
