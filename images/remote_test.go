package images

import "testing"

// TestPlainHTTP: only the registry named PlainHTTP (the agent's http://
// controller) loses https; loopback has it already.
func TestPlainHTTP(t *testing.T) {
	r := Remote{PlainHTTP: "cloud.example:7070"}
	tests := []struct{ ref, scheme string }{
		{"cloud.example:7070/fn:1", "http"},
		{"cloud.example:7071/fn:1", "https"},
		{"cloud.example/fn:1", "https"},
		{"127.0.0.1:5000/fn:1", "http"},
	}
	for _, tt := range tests {
		n, err := r.parse(tt.ref)
		if err != nil {
			t.Fatal(err)
		}
		if got := n.Context().Scheme(); got != tt.scheme {
			t.Errorf("%s: scheme %s, want %s", tt.ref, got, tt.scheme)
		}
	}
}
