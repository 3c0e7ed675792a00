package agent

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/edgefaas/edgefaas/api"
	"github.com/edgefaas/edgefaas/errdefs"
)

func TestValidateMQTTBindings(t *testing.T) {
	ok := api.FunctionSpec{Name: "hello", Image: "hello:latest"}.WithDefaults()
	tests := []struct {
		name     string
		bindings []api.MQTTBinding
		wantErr  bool
	}{
		{"none", nil, false},
		{"several", []api.MQTTBinding{{Filter: "a/+", Reply: "r/{1}", QoS: 1}, {Filter: "#", QoS: 0, Ordered: true}}, false},
		{"qos 2 served as 1", []api.MQTTBinding{{Filter: "a", QoS: 2}}, false},
		{"hash not last", []api.MQTTBinding{{Filter: "a/#/b"}}, true},
		{"qos 3", []api.MQTTBinding{{Filter: "a", QoS: 3}}, true},
		{"reply wildcard missing", []api.MQTTBinding{{Filter: "a/+", Reply: "r/{2}"}}, true},
		{"empty filter", []api.MQTTBinding{{Filter: ""}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := ok
			spec.MQTT = tt.bindings
			err := validate(spec)
			if (err != nil) != tt.wantErr {
				t.Fatalf("validate = %v, want error %v", err, tt.wantErr)
			}
			if err != nil && (!errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), "mqtt binding")) {
				t.Fatalf("error %q: want ErrInvalid naming the mqtt binding", err)
			}
		})
	}
}

// TestDeviceID: the MQTT client id's device id is made once per state
// directory and kept.
func TestDeviceID(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	id, err := deviceID(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(id) {
		t.Fatalf("device id %q: want 16 hex digits", id)
	}
	if again, err := deviceID(dir); err != nil || again != id {
		t.Fatalf("second read %q, %v; want %q", again, err, id)
	}
	if o, err := deviceID(other); err != nil || o == id {
		t.Fatalf("another state directory got %q, %v; want an id other than %q", o, err, id)
	}
}
