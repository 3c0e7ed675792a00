package mqtt

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"maps"
	"os"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgefaas/edgefaas/errdefs"
)

// pahoLink is the link to an external broker (MQTT 3.1.1 with paho).
//
//   - Persistent session: clean session off and a stable client id, so the
//     broker keeps the subscriptions and queues QoS 1 messages while the
//     agent is away (mosquitto needs persistence on to keep them across its
//     own restart).
//   - Subscriptions are made again on every connect (OnConnect), not only
//     the first (paho's ResumeSubs covers only that), so a broker that lost
//     the session still sends everything.
//   - Automatic acks are off: the handler acks only once accept committed
//     the message, so a crash before the commit makes the broker resend.
//   - paho's memory store only: its FileStore does no fsync and panics on
//     I/O errors; the inbox and outbox in SQLite are the record.
//   - OrderMatters(true), with a handler that does not wait for the commit:
//     it queues the message for the writer and returns; the writer acks it
//     after the fsync. So messages reach the inbox in the broker's order
//     (ordered bindings rely on it; with OrderMatters(false) paho starts a
//     goroutine per message, and they can overtake each other), and the
//     pitfall of a blocking handler stalling the client does not apply.
//     The handler never blocks, not even with a full inbox: the router also
//     carries the PUBACKs of the agent's own replies (see acceptLater for
//     what a full inbox does instead).
type pahoLink struct {
	s      *Service
	client paho.Client
	epoch  atomic.Int64 // counts connects: a publish that spans one is not trusted
	ready  atomic.Int64 // the epoch whose subscriptions were made (tests wait for it)

	mu      sync.Mutex // serializes subscription changes with OnConnect
	filters map[string]byte

	done, stopped chan struct{} // stop resume, and it stopped
}

func dialBroker(s *Service) (*pahoLink, error) {
	cfg := s.cfg
	if cfg.ClientID == "" {
		return nil, fmt.Errorf("mqtt: no client id for the persistent session: %w", errdefs.ErrInvalid)
	}
	l := &pahoLink{s: s, filters: s.filters()} // subscribed on the first connect
	opts := paho.NewClientOptions().
		AddBroker(cfg.Broker).
		SetClientID(cfg.ClientID).
		SetCleanSession(false).
		SetResumeSubs(false).
		SetStore(paho.NewMemoryStore()).
		SetOrderMatters(true).
		SetAutoAckDisabled(true).
		SetKeepAlive(cfg.KeepAlive).
		SetPingTimeout(10 * time.Second).
		SetConnectTimeout(10 * time.Second).
		SetWriteTimeout(10 * time.Second).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(30 * time.Second).
		SetDefaultPublishHandler(l.onMessage).
		SetOnConnectHandler(l.onConnect).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			s.log.Warn("mqtt broker connection lost: reconnecting", "broker", cfg.Broker, "err", err)
		})
	if cfg.Username != "" {
		opts.SetUsername(cfg.Username).SetPassword(cfg.Password)
	}
	tlsCfg, err := tlsConfig(cfg)
	if err != nil {
		return nil, err
	}
	if tlsCfg != nil {
		opts.SetTLSConfig(tlsCfg)
	}
	l.client = paho.NewClient(opts)
	// With ConnectRetry the token completes only once connected; the agent
	// does not wait for it: a gateway starts offline as well as online.
	l.client.Connect()
	s.log.Info("mqtt connecting", "broker", cfg.Broker, "client_id", cfg.ClientID)
	l.done = make(chan struct{})
	l.stopped = make(chan struct{})
	go l.resume()
	return l, nil
}

// resume ends shedding (see Service.acceptLater): once the inbox has room,
// it reconnects, so that the broker sends again what the link left
// unacknowledged. MQTT 3.1.1 brokers resend only on a new connection.
func (l *pahoLink) resume() {
	defer close(l.stopped)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-l.done:
			return
		case <-t.C:
		}
		if !l.s.drained() {
			continue
		}
		if !l.client.IsConnectionOpen() {
			// paho is reconnecting on its own (the broker went away):
			// that new connection makes the broker send again. A
			// Disconnect and Connect of ours in the middle of paho's
			// reconnect loop stopped it for good (seen when mosquitto
			// restarted while the inbox was full: no connection after).
			l.s.shedding.Store(false)
			continue
		}
		l.s.log.Info("inbox has room again: reconnecting, so that the broker sends what it kept",
			"deferred", l.s.stats.deferred.Load())
		l.client.Disconnect(250)
		// Not shedding from the new connection on: nothing arrives while
		// disconnected.
		l.s.shedding.Store(false)
		l.client.Connect()
	}
}

func tlsConfig(cfg Config) (*tls.Config, error) {
	if cfg.CAFile == "" && cfg.CertFile == "" {
		return nil, nil
	}
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt ca file: %w", err)
		}
		t.RootCAs = x509.NewCertPool()
		if !t.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("mqtt ca file %s: no PEM certificate: %w", cfg.CAFile, errdefs.ErrInvalid)
		}
	}
	if cfg.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt client certificate: %w", err)
		}
		t.Certificates = []tls.Certificate{cert}
	}
	return t, nil
}

func (l *pahoLink) onConnect(c paho.Client) {
	epoch := l.epoch.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.s.log.Info("mqtt broker connected: subscribing", "broker", l.s.cfg.Broker, "filters", len(l.filters))
	l.subscribe(maps.Clone(l.filters))
	l.ready.Store(epoch)
}

// subscribe with l.mu held. The callback is nil: every message goes to the
// default handler once, whatever subscription brought it.
func (l *pahoLink) subscribe(filters map[string]byte) {
	if len(filters) == 0 {
		return
	}
	t := l.client.SubscribeMultiple(filters, nil)
	if !t.WaitTimeout(publishTimeout) || t.Error() != nil {
		l.s.log.Error("mqtt subscribe failed: it is made again on the next connect", "filters", len(filters), "err", t.Error())
		return
	}
	for f, code := range t.(*paho.SubscribeToken).Result() {
		if code == 0x80 {
			l.s.log.Error("mqtt broker refused a subscription (ACL?)", "filter", f)
		}
	}
}

func (l *pahoLink) setFilters(filters map[string]byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	add := map[string]byte{}
	var drop []string
	for f, q := range filters {
		if old, ok := l.filters[f]; !ok || old != q {
			add[f] = q
		}
	}
	for f := range l.filters {
		if _, ok := filters[f]; !ok {
			drop = append(drop, f)
		}
	}
	l.filters = filters
	if !l.client.IsConnectionOpen() {
		return // OnConnect subscribes
	}
	l.subscribe(add)
	if len(drop) > 0 {
		t := l.client.Unsubscribe(drop...)
		if !t.WaitTimeout(publishTimeout) || t.Error() != nil {
			l.s.log.Warn("mqtt unsubscribe failed", "filters", drop, "err", t.Error())
		}
	}
}

// onMessage runs on paho's router goroutine, one message at a time.
func (l *pahoLink) onMessage(_ paho.Client, m paho.Message) {
	// m.Ack runs only once the message is committed to the inbox and the
	// WAL fsynced (or refused for good). A crash before makes the broker
	// send it again.
	in := inbound{topic: m.Topic(), payload: m.Payload(), qos: m.Qos(), retain: m.Retained(), dup: m.Duplicate()}
	if err := l.s.accept(in, true, m.Ack); err != nil {
		l.s.log.Warn("mqtt message not acknowledged: the broker sends it again", "topic", m.Topic(), "err", err)
	}
}

func (l *pahoLink) publish(ctx context.Context, topic string, payload []byte) error {
	if !l.client.IsConnectionOpen() {
		return fmt.Errorf("mqtt: not connected to %s: %w", l.s.cfg.Broker, errdefs.ErrUnavailable)
	}
	epoch := l.epoch.Load()
	t := l.client.Publish(topic, 1, false, payload)
	select {
	case <-t.Done():
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := t.Error(); err != nil {
		return err
	}
	// paho can complete a token across a reconnect without the broker
	// having acknowledged it: publish again (a duplicate at worst).
	if l.epoch.Load() != epoch {
		return fmt.Errorf("mqtt: reconnected while publishing: %w", errdefs.ErrUnavailable)
	}
	return nil
}

func (l *pahoLink) status() string {
	if l.client.IsConnectionOpen() {
		return l.s.cfg.Broker + " (connected)"
	}
	return l.s.cfg.Broker + " (disconnected)"
}

func (l *pahoLink) close() {
	close(l.done)
	<-l.stopped
	l.client.Disconnect(250)
}
