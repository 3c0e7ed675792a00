package api

import "testing"

func TestValidName(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{"simple", "hello", true},
		{"digits and dash", "a-1-b", true},
		{"one char", "a", true},
		{"63 chars", "a123456789012345678901234567890123456789012345678901234567890bc", true},
		{"64 chars", "a1234567890123456789012345678901234567890123456789012345678901bc", false},
		{"empty", "", false},
		{"leading dash", "-a", false},
		{"trailing dash", "a-", false},
		{"upper case", "Hello", false},
		{"dot", "a.b", false},
		{"dotdot", "..", false},
		{"slash", "a/b", false},
		{"underscore", "a_b", false},
		{"non-ascii", "é", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ValidName(tt.in); got != tt.want {
				t.Errorf("ValidName(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}
