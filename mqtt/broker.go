package mqtt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"syscall"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgefaas/edgefaas/errdefs"
)

// embedded is the broker inside the agent (mochi-mqtt), for sensors on the
// LAN that publish to the gateway itself.
//
// The agent does not connect to it over loopback: a hook sees every
// publish in the broker's own goroutine, before the broker acknowledges it
// to the publisher. accept commits the message to the inbox there, so the
// publisher's PUBACK means "in the inbox, fsynced": at least once end to
// end, although the broker keeps its own state in memory only, and without
// a second MQTT hop (a loopback client would add a round trip and make the
// broker's memory, not the inbox, the record between the two acks).
// Replies are published through mochi's inline client.
type embedded struct {
	s    *Service
	srv  *mochi.Server
	addr string
}

func startEmbedded(s *Service) (*embedded, error) {
	cfg := s.cfg
	srv := mochi.New(&mochi.Options{
		InlineClient: true,
		// mochi logs every connection at info level.
		Logger: slog.New(minLevel{slog.LevelWarn, s.log.With("component", "mqtt-broker").Handler()}),
	})
	e := &embedded{s: s, srv: srv}
	if err := e.addAuth(); err != nil {
		return nil, err
	}
	if err := srv.AddHook(&inboxHook{s: s}, nil); err != nil {
		return nil, err
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "tcp", Address: cfg.Listen})
	if err := srv.AddListener(tcp); err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("embedded mqtt broker: %s is taken (another broker, such as mosquitto, listens there?): "+
				"set --mqtt-listen to a free address, or --mqtt-broker to that broker's URL or none: %w", cfg.Listen, err)
		}
		return nil, fmt.Errorf("embedded mqtt broker: listen on %s (--mqtt-listen): %w", cfg.Listen, err)
	}
	e.addr = tcp.Address()
	if err := srv.Serve(); err != nil {
		_ = srv.Close()
		return nil, fmt.Errorf("embedded mqtt broker: %w", err)
	}
	s.log.Info("embedded mqtt broker listening", "addr", e.addr, "auth_file", cfg.AuthFile, "anonymous", cfg.Anonymous)
	return e, nil
}

// addAuth admits clients by the auth file, or every client when anonymous
// access is configured; with neither, no client gets in (the agent's own
// inline client needs no login).
func (e *embedded) addAuth() error {
	cfg := e.s.cfg
	var a *Auth
	switch {
	case cfg.AuthFile != "" && cfg.Anonymous:
		return fmt.Errorf("embedded mqtt broker: give an auth file or anonymous access, not both (the file can admit anonymous clients): %w", errdefs.ErrInvalid)
	case cfg.AuthFile != "":
		var err error
		if a, err = ReadAuth(cfg.AuthFile); err != nil {
			return fmt.Errorf("embedded mqtt broker: %w", err)
		}
		if st, err := os.Stat(cfg.AuthFile); err == nil && st.Mode().Perm()&0o077 != 0 {
			e.s.log.Warn("the mqtt auth file holds passwords but others can read it: chmod 600", "file", cfg.AuthFile)
		}
	case cfg.Anonymous:
		a = &Auth{open: true}
	default:
		e.s.log.Warn("embedded mqtt broker admits no client: give --mqtt-auth FILE or --mqtt-anonymous")
		a = &Auth{}
	}
	return e.srv.AddHook(&authHook{auth: a}, nil)
}

func (e *embedded) setFilters(map[string]byte) {} // the hook sees every publish

func (e *embedded) publish(_ context.Context, topic string, payload []byte) error {
	// The inline client hands the message to every matching subscriber's
	// queue before it returns.
	return e.srv.Publish(topic, payload, false, 1)
}

func (e *embedded) status() string { return "embedded " + e.addr }

// close stops the broker. mochi's Close disconnects each listener's
// clients through Clients.GetByListener, which takes the clients' read
// lock twice (once more inside Len); a client connecting at that moment
// waits for the write lock (to take over a session) between the two, and
// Go's RWMutex then blocks the second read lock behind it: the broker
// deadlocks for good (seen under qemu in CI, mochi v2.7.9). So the
// listeners are closed here first, with a closer that takes the lock once;
// mochi's Close then finds them closed and only stops its hooks.
func (e *embedded) close() {
	e.srv.Listeners.CloseAll(e.closeClients)
	_ = e.srv.Close()
}

func (e *embedded) closeClients(listener string) {
	for _, cl := range e.srv.Clients.GetAll() {
		if cl.Net.Listener == listener && !cl.Closed() {
			_ = e.srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
	}
}

// inboxHook commits each publish that matches a binding to the inbox
// before the broker acknowledges it.
type inboxHook struct {
	mochi.HookBase
	s *Service
}

func (h *inboxHook) ID() string { return "edgefaas-inbox" }

func (h *inboxHook) Provides(b byte) bool { return b == mochi.OnPublish }

func (h *inboxHook) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	// Live publishes reach a subscriber with retain off (MQTT 3.1.1
	// section 3.3.1.3), so the function sees them so too.
	err := h.s.accept(inbound{topic: pk.TopicName, payload: pk.Payload, qos: pk.FixedHeader.Qos, dup: pk.FixedHeader.Dup,
		internal: cl.Net.Inline}, false, nil)
	if err != nil {
		// Not acknowledged, not passed on: the publisher sends it again
		// once it reconnects.
		h.s.log.Warn("mqtt message not acknowledged", "topic", pk.TopicName, "client", cl.ID, "err", err)
		if !cl.Net.Inline {
			cl.Stop(err)
		}
		return pk, packets.ErrRejectPacket
	}
	return pk, nil
}

// minLevel drops records below a level.
type minLevel struct {
	min slog.Level
	slog.Handler
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h.min, h.Handler.WithAttrs(as)}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.min, h.Handler.WithGroup(name)}
}
