package main

import (
	"testing"

	"github.com/edgefaas/edgefaas/api"
)

func TestParseBinding(t *testing.T) {
	tests := []struct {
		name, in string
		want     api.MQTTBinding
		err      bool
	}{
		{"filter only", "sensors/+/temp", api.MQTTBinding{Filter: "sensors/+/temp", QoS: 1}, false},
		{"reply", "sensors/+/temp=alerts/{1}", api.MQTTBinding{Filter: "sensors/+/temp", Reply: "alerts/{1}", QoS: 1}, false},
		{"options", "in/#=out/{topic};qos=0;ordered", api.MQTTBinding{Filter: "in/#", Reply: "out/{topic}", QoS: 0, Ordered: true}, false},
		{"qos 2", "a;qos=2", api.MQTTBinding{Filter: "a", QoS: 2}, false},
		{"spaces", " a = b ; ordered ", api.MQTTBinding{Filter: "a", Reply: "b", QoS: 1, Ordered: true}, false},
		{"empty", "", api.MQTTBinding{}, true},
		{"no filter", "=r", api.MQTTBinding{}, true},
		{"bad qos", "a;qos=3", api.MQTTBinding{}, true},
		{"unknown", "a;fast", api.MQTTBinding{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseBinding(tt.in)
			if (err != nil) != tt.err || (!tt.err && got != tt.want) {
				t.Fatalf("parseBinding(%q) = %+v, %v; want %+v, error %v", tt.in, got, err, tt.want, tt.err)
			}
		})
	}
}
