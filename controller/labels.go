package controller

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/edgefaas/edgefaas/errdefs"
)

// Labels and selectors as people write and read them: the edgecloud
// command line and the dashboard take and show the same "k=v,k2=v2".

var labelPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$`)

// ValidateLabels checks label keys and values: 1-63 characters of
// letters, digits, '.', '_', '/' and '-', starting with a letter or digit.
func ValidateLabels(labels map[string]string) error {
	for k, v := range labels {
		if !labelPattern.MatchString(k) || !labelPattern.MatchString(v) {
			return fmt.Errorf("label %q=%q: keys and values are 1-63 of [A-Za-z0-9._/-]: %w", k, v, errdefs.ErrInvalid)
		}
	}
	return nil
}

// ParseLabels reads "k=v,k2=v2" (spaces around the pairs ignored); "" is
// no labels.
func ParseLabels(s string) (map[string]string, error) {
	labels := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return labels, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("label %q: want k=v: %w", kv, errdefs.ErrInvalid)
		}
		labels[k] = v
	}
	return labels, ValidateLabels(labels)
}

// FormatLabels writes labels as "k=v,k2=v2", sorted; "-" for none.
func FormatLabels(m map[string]string) string {
	if len(m) == 0 {
		return "-"
	}
	kv := make([]string, 0, len(m))
	for k, v := range m {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	return strings.Join(kv, ",")
}

// ShortDigest is a digest cut for a table: "sha256:" and 12 hex digits.
func ShortDigest(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}
