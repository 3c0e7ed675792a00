package systemd

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/journal"
)

// NewLogger returns the agent's logger. Under systemd, when stderr is the
// service's journal stream (JOURNAL_STREAM matches it) and journald takes
// native messages, each record goes to the journal with its attributes as
// fields (`journalctl -u edgefaasd FUNCTION=resize`). Otherwise it writes
// text to stderr.
func NewLogger(level slog.Level) *slog.Logger {
	text := slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})
	if ok, _ := journal.StderrIsJournalStream(); !ok || !journal.Enabled() {
		return slog.New(text)
	}
	return slog.New(newJournalHandler(nativeJournal{}, level, filepath.Base(os.Args[0]), text))
}

// sender sends one entry to the journal.
type sender interface {
	Send(msg string, pri journal.Priority, fields map[string]string) error
}

// nativeJournal is journald's native protocol (a datagram socket).
type nativeJournal struct{}

func (nativeJournal) Send(msg string, pri journal.Priority, fields map[string]string) error {
	return journal.Send(msg, pri, fields)
}

// journalHandler is a slog.Handler writing journal entries: MESSAGE is the
// record's message, PRIORITY follows its level, and each attribute is a
// field named after its key (group names joined with "_"), upper-cased,
// with every character journald does not allow replaced by "_". An entry
// the journal refuses goes to the fallback handler instead.
type journalHandler struct {
	send     sender
	level    slog.Leveler
	ident    string
	prefix   string // the open groups, as a field name prefix ("REQ_")
	fields   map[string]string
	fallback slog.Handler
}

func newJournalHandler(s sender, level slog.Leveler, ident string, fallback slog.Handler) *journalHandler {
	return &journalHandler{send: s, level: level, ident: ident, fields: map[string]string{}, fallback: fallback}
}

func (h *journalHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.level.Level()
}

func (h *journalHandler) Handle(ctx context.Context, r slog.Record) error {
	fields := make(map[string]string, len(h.fields)+r.NumAttrs()+1)
	for k, v := range h.fields {
		fields[k] = v
	}
	r.Attrs(func(a slog.Attr) bool {
		addField(fields, h.prefix, a)
		return true
	})
	if h.ident != "" {
		fields["SYSLOG_IDENTIFIER"] = h.ident
	}
	if err := h.send.Send(r.Message, priority(r.Level), fields); err != nil {
		return h.fallback.Handle(ctx, r)
	}
	return nil
}

func (h *journalHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := h.clone()
	for _, a := range attrs {
		addField(c.fields, c.prefix, a)
	}
	c.fallback = h.fallback.WithAttrs(attrs)
	return c
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := h.clone()
	c.prefix += name + "_"
	c.fallback = h.fallback.WithGroup(name)
	return c
}

func (h *journalHandler) clone() *journalHandler {
	c := *h
	c.fields = make(map[string]string, len(h.fields))
	for k, v := range h.fields {
		c.fields[k] = v
	}
	return &c
}

// addField adds a (resolved) to fields, groups flattened with "_".
func addField(fields map[string]string, prefix string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		if a.Key != "" {
			prefix += a.Key + "_"
		}
		for _, g := range a.Value.Group() {
			addField(fields, prefix, g)
		}
		return
	}
	if a.Key == "" {
		return
	}
	var v string
	if a.Value.Kind() == slog.KindTime {
		v = a.Value.Time().Format(time.RFC3339Nano)
	} else {
		v = a.Value.String()
	}
	fields[fieldName(prefix+a.Key)] = v
}

// maxFieldName is journald's limit on a field name's length.
const maxFieldName = 64

// fieldName maps an attribute key to a field name journald accepts:
// upper-case letters, digits and "_", starting with a letter, at most 64
// characters. Keys that would start otherwise, or that would overwrite the
// entry's own MESSAGE or PRIORITY, get the prefix "SLOG_" (journald keeps
// fields starting with "_" for the fields it sets itself).
func fieldName(key string) string {
	name := strings.Map(func(r rune) rune {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			return r
		}
		return '_'
	}, strings.ToUpper(key))
	switch {
	case name == "MESSAGE" || name == "PRIORITY" || name == "SYSLOG_IDENTIFIER":
		name = "SLOG_" + name
	case name[0] < 'A' || name[0] > 'Z':
		if rest := strings.TrimLeft(name, "_"); rest == "" {
			name = "SLOG"
		} else {
			name = "SLOG_" + rest
		}
	}
	if len(name) > maxFieldName {
		name = name[:maxFieldName]
	}
	return name
}

// priority maps a level to a syslog priority; levels between slog's named
// ones take the lower one's.
func priority(l slog.Level) journal.Priority {
	switch {
	case l >= slog.LevelError:
		return journal.PriErr
	case l >= slog.LevelWarn:
		return journal.PriWarning
	case l >= slog.LevelInfo:
		return journal.PriInfo
	default:
		return journal.PriDebug
	}
}
