package mqtt

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/edgefaas/edgefaas/errdefs"
)

func TestValidateFilter(t *testing.T) {
	tests := []struct {
		name, filter string
		ok           bool
	}{
		{"plain", "sensors/kitchen/temp", true},
		{"plus", "sensors/+/temp", true},
		{"hash last", "sensors/#", true},
		{"hash alone", "#", true},
		{"plus alone", "+", true},
		{"empty levels", "a//b", true},
		{"leading slash", "/a", true},
		{"only slash", "/", true},
		{"dollar", "$SYS/broker/#", true},
		{"utf8", "capteurs/température/+", true},
		{"empty", "", false},
		{"hash not last", "a/#/b", false},
		{"hash in level", "a/b#", false},
		{"plus in level", "a/b+/c", false},
		{"plus glued", "a+", false},
		{"nul", "a/\x00", false},
		{"newline", "a/\nb", false},
		{"c1 control", "a/\u0085", false},
		{"bad utf8", "a/\xff", false},
		{"too long", strings.Repeat("a", maxTopicLen+1), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateFilter(tt.filter)
			if (err == nil) != tt.ok {
				t.Fatalf("ValidateFilter(%q) = %v, want ok %v", tt.filter, err, tt.ok)
			}
			if err != nil && !errors.Is(err, errdefs.ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
		})
	}
}

func TestValidateTopic(t *testing.T) {
	for _, ok := range []string{"a", "a/b", "/", "a//b", "$SYS/x", "ü/€"} {
		if err := ValidateTopic(ok); err != nil {
			t.Errorf("ValidateTopic(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", "a/+", "a/#", "#", "a\x00", "a\r\nX-Evil: 1", "\xc3"} {
		if err := ValidateTopic(bad); err == nil {
			t.Errorf("ValidateTopic(%q) = nil, want an error", bad)
		}
	}
}

func TestMatch(t *testing.T) {
	tests := []struct {
		name, filter, topic string
		want                []string // nil with ok false: no match
		ok                  bool
	}{
		{"exact", "a/b", "a/b", nil, true},
		{"exact differs", "a/b", "a/c", nil, false},
		{"longer topic", "a/b", "a/b/c", nil, false},
		{"shorter topic", "a/b/c", "a/b", nil, false},
		{"plus", "a/+/c", "a/x/c", []string{"x"}, true},
		{"plus empty level", "a/+/c", "a//c", []string{""}, true},
		{"plus not two levels", "a/+", "a/b/c", nil, false},
		{"plus needs a level", "a/+", "a", nil, false},
		{"two plus", "+/+", "x/y", []string{"x", "y"}, true},
		{"hash rest", "a/#", "a/b/c", []string{"b/c"}, true},
		{"hash parent", "a/#", "a", []string{""}, true},
		{"hash all", "#", "x/y", []string{"x/y"}, true},
		{"plus then hash", "+/t/#", "s/t/u/v", []string{"s", "u/v"}, true},
		{"leading slash plus", "+/a", "/a", []string{""}, true},
		{"trailing slash", "a/+", "a/", []string{""}, true},
		{"dollar not by hash", "#", "$SYS/x", nil, false},
		{"dollar not by plus", "+/x", "$SYS/x", nil, false},
		{"dollar by literal", "$SYS/#", "$SYS/x", []string{"x"}, true},
		{"deadletter not by hash", "#", "edgefaas/deadletter/f", nil, false},
		{"deadletter by literal", "edgefaas/deadletter/+", "edgefaas/deadletter/f", []string{"f"}, true},
		{"case matters", "A", "a", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Match(tt.filter, tt.topic)
			if ok != tt.ok || (ok && !slices.Equal(got, tt.want)) {
				t.Fatalf("Match(%q, %q) = %q, %v; want %q, %v", tt.filter, tt.topic, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestTemplate(t *testing.T) {
	tests := []struct {
		name, tmpl, filter, topic string
		want                      string // "" with parseErr or expandErr
		parseErr, expandErr       bool
	}{
		{"topic", "replies/{topic}", "sensors/#", "sensors/a/b", "replies/sensors/a/b", false, false},
		{"wildcards", "out/{2}/{1}", "in/+/x/+", "in/dev1/x/temp", "out/temp/dev1", false, false},
		{"hash rest", "out/{1}", "in/#", "in/a/b", "out/a/b", false, false},
		{"literal only", "fixed/reply", "in/+", "in/a", "fixed/reply", false, false},
		{"empty match ok", "out/{1}", "in/#", "in", "out/", false, false},
		{"empty whole", "{1}", "in/#", "in", "", false, true},
		{"no such wildcard", "out/{2}", "in/+", "", "", true, false},
		{"zero", "out/{0}", "in/+", "", "", true, false},
		{"leading zero", "out/{01}", "in/+", "", "", true, false},
		{"unknown name", "out/{device}", "in/+", "", "", true, false},
		{"unbalanced", "out/{1", "in/+", "", "", true, false},
		{"stray close", "out/}", "in/+", "", "", true, false},
		{"wildcard literal", "out/+", "in/+", "", "", true, false},
		{"hash literal", "out/#", "in/+", "", "", true, false},
		{"control", "out/\t", "in/+", "", "", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tm, err := ParseTemplate(tt.tmpl, tt.filter)
			if (err != nil) != tt.parseErr {
				t.Fatalf("ParseTemplate(%q, %q) = %v, want error %v", tt.tmpl, tt.filter, err, tt.parseErr)
			}
			if err != nil {
				return
			}
			wild, ok := Match(tt.filter, tt.topic)
			if !ok {
				t.Fatalf("test case: %q does not match %q", tt.topic, tt.filter)
			}
			got, err := tm.Expand(tt.topic, wild)
			if (err != nil) != tt.expandErr || got != tt.want {
				t.Fatalf("Expand = %q, %v; want %q, error %v", got, err, tt.want, tt.expandErr)
			}
		})
	}
}

// FuzzTopics checks the invariants that the rest of the package relies on,
// for any filter, topic and template: a valid filter matches a valid topic
// with one captured value per wildcard, the captures put back into the
// filter give the topic, and an expanded reply is a valid topic.
func FuzzTopics(f *testing.F) {
	f.Add("a/+/c", "a/b/c", "r/{1}/{topic}")
	f.Add("#", "$SYS/x", "{1}")
	f.Add("+/#", "/", "x/{2}")
	f.Add("a//+", "a//", "{topic}/{1}")
	f.Add("\xff", "a\x00", "{")
	f.Fuzz(func(t *testing.T, filter, topic, tmpl string) {
		ferr, terr := ValidateFilter(filter), ValidateTopic(topic)
		if ferr != nil || terr != nil {
			return
		}
		wild, ok := Match(filter, topic)
		// A topic name is also a filter; one that filter covers, it matches
		// (but for the dead-letter rule, which is ours, not the broker's).
		if covers(filter, topic) && !ok && !strings.HasPrefix(topic, DeadLetterPrefix) {
			t.Fatalf("covers(%q, %q) but no match", filter, topic)
		}
		if !ok {
			if filter == topic {
				t.Fatalf("a topic does not match itself as a filter: %q", topic)
			}
			return
		}
		if len(wild) != wildcards(filter) {
			t.Fatalf("Match(%q, %q) captured %q, want %d values", filter, topic, wild, wildcards(filter))
		}
		if back := fill(filter, wild); back != topic && !(strings.HasSuffix(filter, "/#") && back == topic+"/") {
			t.Fatalf("filter %q with %q gives %q, want %q", filter, wild, back, topic)
		}
		tm, err := ParseTemplate(tmpl, filter)
		if err != nil {
			return
		}
		out, err := tm.Expand(topic, wild)
		if err == nil {
			if verr := ValidateTopic(out); verr != nil {
				t.Fatalf("Expand gave an invalid topic %q: %v", out, verr)
			}
		}
	})
}

// fill puts captured wildcard values back into a filter.
func fill(filter string, wild []string) string {
	levels := strings.Split(filter, "/")
	i := 0
	for k, l := range levels {
		if l == "+" || l == "#" {
			levels[k] = wild[i]
			i++
		}
	}
	return strings.Join(levels, "/")
}

func TestCoverFilters(t *testing.T) {
	tests := []struct {
		name string
		in   map[string]byte
		want map[string]byte
	}{
		{"disjoint", map[string]byte{"a/+": 0, "b/#": 1}, map[string]byte{"a/+": 0, "b/#": 1}},
		{"hash covers plus", map[string]byte{"a/#": 0, "a/+": 1, "a/b/c": 1}, map[string]byte{"a/#": 1}},
		{"hash covers parent", map[string]byte{"a/#": 0, "a": 1}, map[string]byte{"a/#": 1}},
		{"partial overlap kept", map[string]byte{"a/+/c": 1, "a/b/+": 0}, map[string]byte{"a/+/c": 1, "a/b/+": 0}},
		{"plus not hash", map[string]byte{"a/+": 0, "a/#": 0}, map[string]byte{"a/#": 0}},
		{"dollar not covered", map[string]byte{"#": 0, "$SYS/x": 1}, map[string]byte{"#": 0, "$SYS/x": 1}},
		{"chain", map[string]byte{"#": 0, "a/#": 0, "a/b": 1}, map[string]byte{"#": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := coverFilters(tt.in); !maps.Equal(got, tt.want) {
				t.Fatalf("coverFilters(%v) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

// FuzzDeadLetter: any payload comes back whole from a dead letter, as text
// or as base64.
func FuzzDeadLetter(f *testing.F) {
	f.Add([]byte("21.5"), "e")
	f.Add([]byte{0xff, 0x00, '"'}, "exit code 3: \x00")
	f.Fuzz(func(t *testing.T, payload []byte, errText string) {
		m := &message{function: "f", topic: "a/b", payload: payload, qos: 1}
		var dl DeadLetter
		if err := json.Unmarshal(deadLetter(m, Outcome{Status: "error", Error: errText}), &dl); err != nil {
			t.Fatal(err)
		}
		got := dl.PayloadBase64
		if got == nil {
			got = []byte(dl.Payload)
		}
		if !bytes.Equal(got, payload) && len(payload) > 0 {
			t.Fatalf("payload %q came back as %q", payload, got)
		}
	})
}
