package api

import (
	"testing"
)

func TestParseBinding(t *testing.T) {
	tests := []struct {
		name, in string
		want     MQTTBinding
		err      bool
	}{
		{"filter only", "sensors/+/temp", MQTTBinding{Filter: "sensors/+/temp", QoS: 1}, false},
		{"reply", "sensors/+/temp=alerts/{1}", MQTTBinding{Filter: "sensors/+/temp", Reply: "alerts/{1}", QoS: 1}, false},
		{"options", "in/#=out/{topic};qos=0;ordered", MQTTBinding{Filter: "in/#", Reply: "out/{topic}", QoS: 0, Ordered: true}, false},
		{"qos 2", "a;qos=2", MQTTBinding{Filter: "a", QoS: 2}, false},
		{"spaces", " a = b ; ordered ", MQTTBinding{Filter: "a", Reply: "b", QoS: 1, Ordered: true}, false},
		{"empty", "", MQTTBinding{}, true},
		{"no filter", "=r", MQTTBinding{}, true},
		{"bad qos", "a;qos=3", MQTTBinding{}, true},
		{"unknown", "a;fast", MQTTBinding{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseBinding(tt.in)
			if (err != nil) != tt.err || (!tt.err && got != tt.want) {
				t.Fatalf("ParseBinding(%q) = %+v, %v; want %+v, error %v", tt.in, got, err, tt.want, tt.err)
			}
		})
	}
}
