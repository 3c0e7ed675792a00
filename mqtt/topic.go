package mqtt

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/edgefaas/edgefaas/errdefs"
)

// maxTopicLen is the MQTT limit on a topic name or filter: a two-byte
// length prefix (MQTT 3.1.1 section 1.5.3).
const maxTopicLen = 65535

// DeadLetterPrefix starts every dead-letter topic:
// edgefaas/deadletter/{function}.
const DeadLetterPrefix = "edgefaas/deadletter/"

// checkText applies the MQTT rules for UTF-8 strings to a topic or filter:
// well-formed UTF-8, no U+0000 (a MUST), and here also no other control
// characters (U+0001-U+001F, U+007F-U+009F: a SHOULD NOT in the spec, a
// MUST here because topics reach functions as X-Mqtt-Topic headers and the
// MQTT_TOPIC variable, where a line break would split a header).
func checkText(kind, s string) error {
	if s == "" {
		return fmt.Errorf("%s is empty: %w", kind, errdefs.ErrInvalid)
	}
	if len(s) > maxTopicLen {
		return fmt.Errorf("%s is %d bytes, the MQTT limit is %d: %w", kind, len(s), maxTopicLen, errdefs.ErrInvalid)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s %q is not valid UTF-8: %w", kind, s, errdefs.ErrInvalid)
	}
	for _, r := range s {
		if r <= 0x1f || (r >= 0x7f && r <= 0x9f) {
			return fmt.Errorf("%s %q holds control character %U: %w", kind, s, r, errdefs.ErrInvalid)
		}
	}
	return nil
}

// ValidateTopic checks a topic name, as published: the UTF-8 rules, and no
// wildcard characters.
func ValidateTopic(topic string) error {
	if err := checkText("topic", topic); err != nil {
		return err
	}
	if strings.ContainsAny(topic, "+#") {
		return fmt.Errorf("topic %q holds a wildcard (+ or #): %w", topic, errdefs.ErrInvalid)
	}
	return nil
}

// ValidateFilter checks a topic filter: the UTF-8 rules, "+" only as a whole
// level, "#" only as the whole last level. Empty levels ("a//b", "/a") are
// allowed, as MQTT allows them.
func ValidateFilter(filter string) error {
	if err := checkText("topic filter", filter); err != nil {
		return err
	}
	levels := strings.Split(filter, "/")
	for i, l := range levels {
		switch {
		case l == "#" && i != len(levels)-1:
			return fmt.Errorf("topic filter %q: # must be the last level: %w", filter, errdefs.ErrInvalid)
		case l != "#" && l != "+" && strings.ContainsAny(l, "+#"):
			return fmt.Errorf("topic filter %q: a wildcard must fill its whole level: %w", filter, errdefs.ErrInvalid)
		}
	}
	return nil
}

// wildcards is the number of wildcard levels in a valid filter.
func wildcards(filter string) int {
	n := 0
	for l := range strings.SplitSeq(filter, "/") {
		if l == "+" || l == "#" {
			n++
		}
	}
	return n
}

// Match reports whether topic matches filter (both valid) and returns what
// each wildcard level matched, in order: a "+" its level, a "#" the rest of
// the topic ("" when "a/#" matches "a").
//
// Topics starting with "$" are not matched by filters starting with a
// wildcard (MQTT 3.1.1 section 4.7.2). The same holds here for dead-letter
// topics (edgefaas/deadletter/...), so that a "#" binding whose function
// fails does not feed on its own dead letters.
func Match(filter, topic string) ([]string, bool) {
	if (filter[0] == '+' || filter[0] == '#') &&
		(topic[0] == '$' || strings.HasPrefix(topic, DeadLetterPrefix)) {
		return nil, false
	}
	var wild []string
	rest := topic
	for fl := range strings.SplitSeq(filter, "/") {
		if fl == "#" {
			if rest == "\x00" {
				rest = ""
			}
			return append(wild, rest), true
		}
		if rest == "\x00" { // the topic's levels are used up
			return nil, false
		}
		tl, after, more := strings.Cut(rest, "/")
		if !more {
			after = "\x00" // no further level (distinct from one empty level)
		}
		switch fl {
		case "+":
			wild = append(wild, tl)
		case tl:
		default:
			return nil, false
		}
		rest = after
	}
	return wild, rest == "\x00"
}

// Template is a parsed reply topic template: literal text with {topic} (the
// incoming topic) and {1}, {2}... (what the filter's wildcard levels
// matched, in order) substituted.
type Template struct {
	parts []tmplPart
}

type tmplPart struct {
	lit string
	ref int // 0: literal; -1: {topic}; n > 0: wildcard n
}

// ParseTemplate checks a reply template against the filter it answers: every
// {N} refers to a wildcard of the filter, the literal text has no wildcard
// characters or braces, and the expansion is a topic name under the UTF-8
// rules.
func ParseTemplate(tmpl, filter string) (Template, error) {
	if err := checkText("reply topic", tmpl); err != nil {
		return Template{}, err
	}
	n := wildcards(filter)
	var t Template
	rest := tmpl
	for rest != "" {
		i := strings.IndexAny(rest, "{}")
		if i < 0 {
			t.parts = append(t.parts, tmplPart{lit: rest})
			break
		}
		if i > 0 {
			t.parts = append(t.parts, tmplPart{lit: rest[:i]})
		}
		end := strings.IndexByte(rest[i:], '}')
		if rest[i] == '}' || end < 0 {
			return Template{}, fmt.Errorf("reply topic %q: unbalanced brace: %w", tmpl, errdefs.ErrInvalid)
		}
		name := rest[i+1 : i+end]
		switch k, err := strconv.Atoi(name); {
		case name == "topic":
			t.parts = append(t.parts, tmplPart{ref: -1})
		case err == nil && k >= 1 && k <= n && name[0] != '0':
			t.parts = append(t.parts, tmplPart{ref: k})
		case err == nil:
			return Template{}, fmt.Errorf("reply topic %q: {%s}: filter %q has %d wildcards: %w", tmpl, name, filter, n, errdefs.ErrInvalid)
		default:
			return Template{}, fmt.Errorf("reply topic %q: unknown {%s}: want {topic} or {1}, {2}...: %w", tmpl, name, errdefs.ErrInvalid)
		}
		rest = rest[i+end+1:]
	}
	for _, p := range t.parts {
		if strings.ContainsAny(p.lit, "+#") {
			return Template{}, fmt.Errorf("reply topic %q holds a wildcard (+ or #): %w", tmpl, errdefs.ErrInvalid)
		}
	}
	return t, nil
}

// Expand builds the reply topic for a message on topic whose wildcard
// levels matched wild. The result is checked as a topic name: a wildcard
// match can be empty, and the whole can grow past the limit.
func (t Template) Expand(topic string, wild []string) (string, error) {
	var b strings.Builder
	for _, p := range t.parts {
		switch {
		case p.ref == -1:
			b.WriteString(topic)
		case p.ref > 0 && p.ref <= len(wild):
			b.WriteString(wild[p.ref-1])
		case p.ref > 0:
			return "", fmt.Errorf("reply topic: no wildcard {%d} in this match: %w", p.ref, errdefs.ErrInvalid)
		default:
			b.WriteString(p.lit)
		}
	}
	out := b.String()
	if err := ValidateTopic(out); err != nil {
		return "", err
	}
	return out, nil
}

// IsZero reports whether the template is empty (no reply).
func (t Template) IsZero() bool { return len(t.parts) == 0 }

// covers reports whether filter a matches every topic that filter b
// matches (both valid).
func covers(a, b string) bool {
	al, bl := strings.Split(a, "/"), strings.Split(b, "/")
	wild := func(l string) bool { return l == "+" || l == "#" }
	// A broker does not match $-topics by a leading wildcard.
	if wild(al[0]) && !wild(bl[0]) && strings.HasPrefix(bl[0], "$") {
		return false
	}
	for i, x := range al {
		if x == "#" {
			return true
		}
		if i >= len(bl) || bl[i] == "#" || (x != "+" && x != bl[i]) {
			return false
		}
	}
	return len(al) == len(bl)
}

// coverFilters returns the smallest set of subscriptions that receives
// every message of filters: a filter covered by another is left out (and
// its QoS given to the one covering it). MQTT 3.1.1 (section 3.3.5) lets a
// broker send one copy of a message per matching subscription of a
// client, and each copy would run every matching binding again.
func coverFilters(filters map[string]byte) map[string]byte {
	out := map[string]byte{}
	for f, q := range filters {
		covered := false
		for g := range filters {
			if g != f && covers(g, f) {
				covered = true
				break
			}
		}
		if !covered {
			out[f] = q
		}
	}
	for f, q := range filters {
		for g := range out {
			if covers(g, f) {
				out[g] = max(out[g], q)
			}
		}
	}
	return out
}
