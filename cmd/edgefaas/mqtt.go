package main

import (
	"fmt"
	"strings"

	"github.com/edgefaas/edgefaas/api"
)

// parseBinding reads one --mqtt value:
//
//	FILTER[=REPLY][;qos=0|1|2][;ordered]
//
// QoS defaults to 1 (at least once: committed to the inbox before the
// broker's message is acknowledged); 2 is served as 1. "ordered" runs the
// messages of one topic one at a time, in order; without it they run in
// parallel. A filter or reply holding "=" or ";" cannot be given here (the
// admin API takes any). The agent checks the filter and the template.
func parseBinding(s string) (api.MQTTBinding, error) {
	parts := strings.Split(s, ";")
	filter, reply, _ := strings.Cut(parts[0], "=")
	b := api.MQTTBinding{Filter: strings.TrimSpace(filter), Reply: strings.TrimSpace(reply), QoS: 1}
	if b.Filter == "" {
		return b, fmt.Errorf("--mqtt %q: want FILTER[=REPLY][;qos=N][;ordered]", s)
	}
	for _, opt := range parts[1:] {
		switch opt = strings.TrimSpace(opt); opt {
		case "ordered":
			b.Ordered = true
		case "qos=0", "qos=1", "qos=2":
			b.QoS = opt[4] - '0'
		default:
			return b, fmt.Errorf("--mqtt %q: unknown option %q: want qos=0, qos=1, qos=2 or ordered", s, opt)
		}
	}
	return b, nil
}
