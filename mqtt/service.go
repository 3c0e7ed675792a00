package mqtt

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgefaas/edgefaas/api"
	"github.com/edgefaas/edgefaas/errdefs"
	"github.com/edgefaas/edgefaas/store"
)

// Broker kinds of Config.Broker besides a URL.
const (
	BrokerEmbedded = "embedded"
	BrokerNone     = "none"
)

// Config configures a Service. Zero values have the defaults given.
type Config struct {
	// Broker is "embedded" (a broker inside the agent), "none" or the URL
	// of an external broker: tcp://, ssl:// (tls://, mqtts://), ws:// or
	// wss://. Required.
	Broker string
	// Listen is where the embedded broker listens; ":1883".
	Listen string
	// AuthFile is the embedded broker's users and access rules (see Auth).
	// Without it only Anonymous lets clients in.
	AuthFile  string
	Anonymous bool // the embedded broker admits every client

	// For an external broker: the client id of the persistent session
	// (required: a stable id derived from the device), credentials and TLS.
	ClientID           string
	Username, Password string
	CAFile             string        // trust these CAs instead of the system's
	CertFile, KeyFile  string        // client certificate
	KeepAlive          time.Duration // 30s

	InboxSize  int           // inbox rows (a message times its matching bindings) before acks stop; 10000
	OutboxSize int           // replies and dead letters waiting to be published; 10000
	MaxPayload int           // larger messages are refused (logged, acknowledged, not run); 1 MiB
	MaxTopic   int           // longer topics are refused likewise; 1024 bytes
	Retries    int           // attempts after the first before a dead letter; 4; negative: none
	Backoff    time.Duration // wait before the first retry, doubled for each next; 1s
	Workers    int           // invocations running at once; 16
	Window     int           // replies in flight to the broker at once (throttles resends after an outage); 32

	// Bindings are the bindings at start, by function: set before the
	// link connects, so that messages the broker kept for the session
	// find them. SetBindings changes them later.
	Bindings map[string][]api.MQTTBinding

	DB     *store.DB    // required: the inbox and outbox
	Invoke InvokeFunc   // required: runs one message
	Logger *slog.Logger // slog.Default()
}

func (c *Config) setDefaults() {
	if c.Listen == "" {
		c.Listen = ":1883"
	}
	if c.KeepAlive <= 0 {
		c.KeepAlive = 30 * time.Second
	}
	if c.InboxSize <= 0 {
		c.InboxSize = 10000
	}
	if c.OutboxSize <= 0 {
		c.OutboxSize = 10000
	}
	if c.MaxPayload <= 0 {
		c.MaxPayload = 1 << 20
	}
	if c.MaxTopic <= 0 {
		c.MaxTopic = 1024
	}
	switch {
	case c.Retries == 0:
		c.Retries = 4
	case c.Retries < 0:
		c.Retries = 0
	}
	if c.Backoff <= 0 {
		c.Backoff = time.Second
	}
	if c.Workers <= 0 {
		c.Workers = 16
	}
	if c.Window <= 0 {
		c.Window = 32
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Delivery is one message for one binding of a function.
type Delivery struct {
	Function  string
	Topic     string
	Payload   []byte
	QoS       byte // 0 or 1 (QoS 2 is served as 1)
	Retained  bool // delivered from the broker's retained messages
	Duplicate bool // it may have run before: the broker sent it again (DUP), or a previous run left it
	Attempt   int  // 1 for the first attempt
}

// Outcome is how an invocation ended.
type Outcome struct {
	OK        bool
	Body      []byte // the function's answer: the reply's payload
	Status    string // the X-Faas-Status, for logs and dead letters
	Error     string // what went wrong, when not OK
	Permanent bool   // retrying cannot help (the function is gone, the message too large)
}

// InvokeFunc runs a delivery; it returns when the invocation ended.
type InvokeFunc func(ctx context.Context, d Delivery) Outcome

// link is the connection to the broker: paho to an external one, or the
// embedded broker itself.
type link interface {
	setFilters(filters map[string]byte) // the subscriptions the bindings need
	publish(ctx context.Context, topic string, payload []byte) error
	status() string
	close()
}

// Service is the MQTT trigger. It is safe for concurrent use.
type Service struct {
	cfg Config
	log *slog.Logger

	ctx       context.Context
	cancel    context.CancelFunc
	closeOnce sync.Once

	q        *queue
	disp     *dispatcher
	pub      *publisher
	inSlots  *slots
	outSlots *slots
	link     link // nil with broker "none"

	mu       sync.RWMutex
	bindings map[string][]api.MQTTBinding // by function

	// intake holds QoS 1 messages from paho that wait for room in the
	// inbox, in order; waiting counts them (see acceptLater).
	intake      *fifo[func()]
	intakeDone  chan struct{}
	waiting     atomic.Int64
	intakeCount *slots // messages in intake
	intakeBytes *slots // their approximate size
	shedding    atomic.Bool

	stats counters
}

// counters are the Service's statistics.
type counters struct {
	received, redelivered, resumed, refused, dropped, deferred, handled, retries, deadLetters, published atomic.Int64
}

// Stats is a snapshot of the Service's counters, for metrics.
type Stats struct {
	Received    int64 // messages taken from the broker (a message counts once, whatever it matched)
	Redelivered int64 // of those, sent again by the broker (DUP): possible duplicates
	Resumed     int64 // inbox and outbox rows a previous run left: possible duplicates too
	Refused     int64 // invalid, too large or unmatched messages, logged and not run
	Dropped     int64 // QoS 0 messages dropped because the inbox was full
	Deferred    int64 // QoS 1 messages left with the broker, unacknowledged, while the inbox was full (they come again)
	Handled     int64 // inbox rows done (ran successfully, or dead-lettered)
	Retries     int64 // failed attempts that were retried
	DeadLetters int64
	Published   int64 // replies and dead letters the broker acknowledged
	InboxDepth  int
	OutboxDepth int
}

// Start opens the inbox and outbox, runs what a previous run left in them,
// and connects to the broker (or starts the embedded one). With broker
// "none" it returns a Service that only validates bindings.
func Start(cfg Config) (*Service, error) {
	if cfg.Broker == "" {
		cfg.Broker = BrokerNone
	}
	if cfg.Broker != BrokerNone && (cfg.DB == nil || cfg.Invoke == nil) {
		return nil, fmt.Errorf("mqtt: no database or invoke function: %w", errdefs.ErrInvalid)
	}
	cfg.setDefaults()
	s := &Service{cfg: cfg, log: cfg.Logger.With("component", "mqtt"), bindings: map[string][]api.MQTTBinding{},
		inSlots: newSlots(cfg.InboxSize), outSlots: newSlots(cfg.OutboxSize), intake: newFIFO[func()](),
		intakeCount: newSlots(min(cfg.InboxSize, 1000)), intakeBytes: newSlots(16 << 20)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	for fn, bs := range cfg.Bindings {
		if err := s.SetBindings(fn, bs); err != nil {
			return nil, err
		}
	}
	if cfg.Broker == BrokerNone {
		return s, nil
	}
	if err := checkBrokerURL(cfg.Broker); err != nil {
		return nil, err
	}
	var err error
	if s.q, err = openQueue(cfg.DB, s.log); err != nil {
		return nil, err
	}
	s.q.start() // idle until the first op; close needs it running
	s.disp = newDispatcher(s)
	s.pub = newPublisher(s)
	s.q.onInbox, s.q.onOutbox = s.disp.add, s.pub.add
	ins, outs, err := s.q.load(s.ctx)
	if err != nil {
		s.q.close()
		return nil, err
	}
	if len(ins)+len(outs) > 0 {
		s.log.Info("resuming messages of the previous run", "inbox", len(ins), "outbox", len(outs))
	}
	// Every row was handed to a worker (or the publisher) as soon as it
	// was queued: whatever is left may have run (or gone out) before the
	// agent stopped, so it is marked as a possible duplicate.
	for _, m := range ins {
		m.dup = true
	}
	s.stats.resumed.Store(int64(len(ins) + len(outs)))
	s.inSlots.used, s.outSlots.used = len(ins), len(outs)
	// Queued before the link brings new messages: an ordered lane runs
	// what the previous run left before what arrives now.
	s.disp.add(ins)
	if cfg.Broker == BrokerEmbedded {
		s.link, err = startEmbedded(s)
	} else {
		s.link, err = dialBroker(s)
	}
	if err != nil {
		s.q.close()
		s.cancel()
		return nil, err
	}
	s.link.setFilters(s.filters())
	s.intakeDone = make(chan struct{})
	go func() {
		defer close(s.intakeDone)
		for f, ok := s.intake.pop(); ok; f, ok = s.intake.pop() {
			f()
		}
	}()
	s.disp.start(cfg.Workers)
	s.pub.start(cfg.Window)
	s.pub.add(outs)
	return s, nil
}

func checkBrokerURL(broker string) error {
	if broker == BrokerEmbedded {
		return nil
	}
	u, err := url.Parse(broker)
	if err != nil || u.Host == "" || !slices.Contains([]string{"tcp", "ssl", "tls", "mqtts", "ws", "wss"}, u.Scheme) {
		return fmt.Errorf("mqtt broker %q: want embedded, none or a tcp://, ssl://, ws:// or wss:// URL with a host: %w", broker, errdefs.ErrInvalid)
	}
	return nil
}

// Close stops taking messages, lets running invocations end and commits
// what they left. Messages not yet run stay in the inbox for the next
// start. Later calls do nothing.
func (s *Service) Close() error {
	s.closeOnce.Do(s.close)
	return nil
}

func (s *Service) close() {
	s.cancel()
	if s.q == nil {
		return
	}
	s.inSlots.close()
	s.outSlots.close()
	s.intake.close()
	s.link.close() // no new messages: unacknowledged ones stay with the broker
	<-s.intakeDone
	s.disp.close()
	s.pub.close()
	s.q.close()
}

// Status is a short summary for the agent's status line: "none",
// "embedded :1883" or the broker URL and whether it is connected.
func (s *Service) Status() string {
	if s.link == nil {
		return BrokerNone
	}
	return s.link.status()
}

// Stats returns the counters.
func (s *Service) Stats() Stats {
	st := Stats{
		Received: s.stats.received.Load(), Redelivered: s.stats.redelivered.Load(), Resumed: s.stats.resumed.Load(), Refused: s.stats.refused.Load(),
		Dropped: s.stats.dropped.Load(), Deferred: s.stats.deferred.Load(), Handled: s.stats.handled.Load(), Retries: s.stats.retries.Load(),
		DeadLetters: s.stats.deadLetters.Load(), Published: s.stats.published.Load(),
		InboxDepth: s.inSlots.inUse(), OutboxDepth: s.outSlots.inUse(),
	}
	return st
}

// ValidateBinding checks a binding as deployed: its filter, QoS 0, 1 or 2
// (2 is served as 1) and its reply template.
func ValidateBinding(b api.MQTTBinding) error {
	if err := ValidateFilter(b.Filter); err != nil {
		return err
	}
	if b.QoS > 2 {
		return fmt.Errorf("mqtt binding %q: qos %d, want 0, 1 or 2: %w", b.Filter, b.QoS, errdefs.ErrInvalid)
	}
	if b.Reply == "" {
		return nil
	}
	_, err := ParseTemplate(b.Reply, b.Filter)
	return err
}

// SetBindings replaces a function's bindings (none: the function no longer
// takes messages) and updates the subscriptions.
func (s *Service) SetBindings(function string, bs []api.MQTTBinding) error {
	for _, b := range bs {
		if err := ValidateBinding(b); err != nil {
			return fmt.Errorf("function %q: %w", function, err)
		}
	}
	s.mu.Lock()
	if len(bs) == 0 {
		delete(s.bindings, function)
	} else {
		s.bindings[function] = slices.Clone(bs)
	}
	s.mu.Unlock()
	if s.link != nil {
		s.link.setFilters(s.filters())
	}
	return nil
}

// filters are the subscriptions the bindings need.
func (s *Service) filters() map[string]byte {
	s.mu.RLock()
	defer s.mu.RUnlock()
	filters := map[string]byte{}
	for _, fbs := range s.bindings {
		for _, b := range fbs {
			filters[b.Filter] = max(filters[b.Filter], min(b.QoS, 1))
		}
	}
	return coverFilters(filters)
}
