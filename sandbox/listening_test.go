package sandbox

import "testing"

func TestListensOn(t *testing.T) {
	const header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
	tests := []struct {
		name  string
		table string
		want  bool
	}{
		{"empty", header, false},
		{"listening v4", header + "   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1\n", true},
		{"listening v6", header + "   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 0 0 0 0 0 1\n", true},
		{"established, not listening", header + "   0: 0100007F:1F90 0100007F:D2A4 01 00000000:00000000 00:00000000 00000000     0        0 1 1\n", false},
		{"other port", header + "   0: 00000000:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1\n", false},
		{"remote port matches only", header + "   0: 00000000:0050 00000000:1F90 0A 0 0 0 0 0 1\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := listensOn([]byte(tt.table), []byte(":1F90")); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
