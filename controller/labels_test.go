package controller

import "testing"

func TestParseLabels(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want map[string]string
		ok   bool
	}{
		{"empty", "", map[string]string{}, true},
		{"two", "site=depot, tier=edge", map[string]string{"site": "depot", "tier": "edge"}, true},
		{"no value", "site", nil, false},
		{"no key", "=x", nil, false},
		{"bad character", "site=a b", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseLabels(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("ParseLabels(%q): error %v, want ok=%v", tt.in, err, tt.ok)
			}
			if tt.ok && len(got) != len(tt.want) {
				t.Fatalf("ParseLabels(%q) = %v, want %v", tt.in, got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Fatalf("ParseLabels(%q) = %v, want %v", tt.in, got, tt.want)
				}
			}
		})
	}
}
