package proto

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"

	"github.com/edgefaas/edgefaas/errdefs"
)

func TestDecode(t *testing.T) {
	good, err := Encode(TypeUsageAck, "m1", UsageAck{UpTo: 7})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		frame []byte
		want  error // nil: decodes
	}{
		{"current version", good, nil},
		{"other version", []byte(`{"v":2,"type":"usage_ack","id":"m1","body":{"up_to":7}}`), errdefs.ErrInvalid},
		{"no version", []byte(`{"type":"usage_ack","body":{"up_to":7}}`), errdefs.ErrInvalid},
		{"unknown type", []byte(`{"v":1,"type":"deploy","body":{}}`), errdefs.ErrInvalid},
		{"unknown field", []byte(`{"v":1,"type":"health","extra":1}`), errdefs.ErrInvalid},
		{"trailing data", append(append([]byte{}, good...), []byte(` {}`)...), errdefs.ErrInvalid},
		{"not json", []byte(`hello`), errdefs.ErrInvalid},
		{"long id", []byte(`{"v":1,"type":"health","id":"` + strings.Repeat("x", 65) + `"}`), errdefs.ErrInvalid},
		{"oversized", append([]byte(`{"v":1,"type":"health","id":"`), bytes.Repeat([]byte("x"), MaxFrame)...), errdefs.ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Decode(tt.frame)
			if !errors.Is(err, tt.want) && (err != nil || tt.want != nil) {
				t.Fatalf("Decode: got %v, want %v", err, tt.want)
			}
			if tt.want == nil && (e.Type != TypeUsageAck || e.ID != "m1") {
				t.Fatalf("got %+v", e)
			}
		})
	}
}

func TestDecodeBody(t *testing.T) {
	rec := UsageRecord{Seq: 1, CallID: "c", Function: "f", Trigger: "http", Status: "ok", BilledMs: 100}
	tests := []struct {
		name string
		body Usage
		ok   bool
	}{
		{"one record", Usage{Records: []UsageRecord{rec}}, true},
		{"empty batch", Usage{}, false},
		{"seq not increasing", Usage{Records: []UsageRecord{rec, rec}}, false},
		{"negative duration", Usage{Records: []UsageRecord{{Seq: 1, Function: "f", Status: "ok", DurationNs: -1}}}, false},
		{"no function", Usage{Records: []UsageRecord{{Seq: 1, Status: "ok"}}}, false},
		{"too many", Usage{Records: make([]UsageRecord, MaxBatch+1)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frame, err := Encode(TypeUsage, "u", tt.body)
			if err != nil {
				t.Fatal(err)
			}
			e, err := Decode(frame)
			if err != nil {
				t.Fatal(err)
			}
			_, err = DecodeBody[Usage](e)
			if (err == nil) != tt.ok {
				t.Fatalf("DecodeBody: got %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

// TestMaxBatchFits: a full batch of long records stays under MaxFrame, so
// the agent never builds a frame the controller refuses.
func TestMaxBatchFits(t *testing.T) {
	recs := make([]UsageRecord, MaxBatch)
	for i := range recs {
		recs[i] = UsageRecord{Seq: 1<<62 + int64(i), CallID: strings.Repeat("c", 24), Function: strings.Repeat("f", 64),
			ImageDigest: "sha256:" + strings.Repeat("a", 64), Trigger: "schedule", StartNs: 1 << 62, DurationNs: 1 << 40,
			BilledMs: 1 << 30, MemoryBytes: 1 << 40, KiBMs: 1 << 60, CPUNs: 1 << 40, Cold: true, InitNs: 1 << 40,
			Status: "too_large", RequestBytes: 1 << 30, ResponseBytes: 1 << 30}
	}
	if _, err := Encode(TypeUsage, strings.Repeat("i", 64), Usage{Records: recs}); err != nil {
		t.Fatalf("a full batch does not fit: %v", err)
	}
}

func TestChallengeSignature(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	id := DeviceID(pub)
	if !ValidDeviceID(id) {
		t.Fatalf("DeviceID %q is not valid", id)
	}
	nonce := bytes.Repeat([]byte{7}, NonceSize)
	sig := ed25519.Sign(priv, ChallengeMessage(id, nonce))
	if !ed25519.Verify(pub, ChallengeMessage(id, nonce), sig) {
		t.Fatal("signature does not verify")
	}
	other := DeviceID(bytes.Repeat([]byte{1}, ed25519.PublicKeySize))
	if ed25519.Verify(pub, ChallengeMessage(other, nonce), sig) {
		t.Fatal("signature verifies for another device id")
	}
}
