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
	Duplicate bool // the broker sent it again (DUP): it may have run before
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

	ctx    context.Context
	cancel context.CancelFunc

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
	intake     *fifo[func()]
	intakeDone chan struct{}
	waiting    atomic.Int64

	stats counters
}

// counters are the Service's statistics.
type counters struct {
	received, redelivered, refused, dropped, handled, retries, deadLetters, published atomic.Int64
}

// Stats is a snapshot of the Service's counters, for metrics.
type Stats struct {
	Received    int64 // messages taken from the broker (a message counts once, whatever it matched)
	Redelivered int64 // of those, sent again by the broker (DUP): possible duplicates
	Refused     int64 // invalid, too large or unmatched messages, logged and not run
	Dropped     int64 // QoS 0 messages dropped because the inbox was full
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
		inSlots: newSlots(cfg.InboxSize), outSlots: newSlots(cfg.OutboxSize), intake: newFIFO[func()]()}
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
// start.
func (s *Service) Close() error {
	if s.q == nil {
		return nil
	}
	s.inSlots.close()
	s.outSlots.close()
	s.intake.close()
	s.link.close() // no new messages: unacknowledged ones stay with the broker
	<-s.intakeDone
	s.disp.close()
	s.cancel()
	s.pub.close()
	s.q.close()
	return nil
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
		Received: s.stats.received.Load(), Redelivered: s.stats.redelivered.Load(), Refused: s.stats.refused.Load(),
		Dropped: s.stats.dropped.Load(), Handled: s.stats.handled.Load(), Retries: s.stats.retries.Load(),
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

// inbound is a message as the broker delivered it.
type inbound struct {
	topic   string
	payload []byte
	qos     byte
	retain  bool
	dup     bool
	// internal: published by the agent itself (a reply that feeds another
	// binding, through the embedded broker). It never waits for room:
	// the workers that would make room are the ones publishing, so
	// waiting could deadlock; the bound is exceeded by at most the
	// replies in flight (Workers + Window).
	internal bool
}

// accept takes a message from the broker into the inbox, and says when it
// may be acknowledged: once committed (and, for QoS 1, fsynced), or at once
// when it is refused for good (logged) or is a QoS 0 message.
//
// With ack nil, accept waits for that and returns nil; with ack set, it
// returns as soon as the message is queued for its commit, and the writer
// calls ack after the fsync (the paho link: its reader is not held up by
// the commit, and messages reach the inbox in the broker's order). ack is
// never called when the commit fails, and accept returns an error when the
// agent is closing: the broker keeps the message and sends it again. When
// the inbox is full, a QoS 1 message waits here for room, unacknowledged.
func (s *Service) accept(in inbound, external bool, ack func()) error {
	now := func() error {
		if ack != nil {
			ack()
		}
		return nil
	}
	var ms []*message
	if in.topic != "" {
		ms = s.match(in)
	}
	if len(ms) == 0 && !external {
		return now() // the embedded broker shows the agent every message, not only its own
	}
	s.stats.received.Add(1)
	if in.dup {
		s.stats.redelivered.Add(1)
	}
	if err := s.check(in); err != nil {
		s.refuse(in, err.Error())
		return now()
	}
	if len(ms) == 0 {
		s.refuse(in, "no binding matches it (removed since the broker sent it)")
		return now()
	}
	n := len(ms)
	if in.qos == 0 {
		if !s.inSlots.tryTake(n) {
			s.stats.dropped.Add(1)
			s.refuse(in, fmt.Sprintf("inbox full (%d): QoS 0 message dropped", s.cfg.InboxSize))
			return now()
		}
		if err := s.early(&op{insert: ms, then: func(err error) {
			if err != nil {
				s.inSlots.release(n)
			}
		}}); err != nil {
			s.inSlots.release(n)
		}
		return now()
	}
	if ack != nil {
		return s.acceptLater(in, ms, ack)
	}
	if in.internal {
		s.inSlots.force(n)
	} else if !s.inSlots.take(n, s.fullInbox(in)) {
		return fmt.Errorf("mqtt: closing: %w", errdefs.ErrUnavailable)
	}
	res := make(chan error, 1)
	if err := s.early(&op{insert: ms, durable: true, then: func(err error) { res <- err }}); err != nil {
		s.inSlots.release(n)
		return err
	}
	if err := <-res; err != nil {
		s.inSlots.release(n)
		return err
	}
	return nil
}

// early queues o's messages for their commit and hands them to the workers
// at once: the invocation overlaps the commit and the fsync, and a worker
// waits for the commit only when it needs the row (see Service.stored). A
// message whose commit fails is not acknowledged, so the broker sends it
// again; if it ran meanwhile, it runs twice, as after a crash.
func (s *Service) early(o *op) error {
	o.early = true
	for _, m := range o.insert {
		m.stored = make(chan struct{})
	}
	if err := s.q.submit(o); err != nil {
		return err
	}
	s.disp.add(o.insert)
	return nil
}

// stored waits until m's row is committed and reports whether it was.
func (s *Service) stored(m *message) bool {
	if m.stored == nil {
		return true
	}
	<-m.stored
	return m.storeErr == nil
}

func (s *Service) fullInbox(in inbound) func() {
	return func() {
		s.log.Warn("inbox full: holding acknowledgements, the broker keeps the messages", "inbox", s.cfg.InboxSize, "topic", in.topic)
	}
}

// acceptLater queues a QoS 1 message for its commit without waiting, in
// the order the messages came. When the inbox is full, the message (and
// every one after it, to keep the order) waits in the intake queue,
// unacknowledged, instead of blocking paho's router: a blocked router
// stops paho's reader, which then misses the broker's PINGRESP and drops
// the connection. The broker's in-flight window bounds that queue.
func (s *Service) acceptLater(in inbound, ms []*message, ack func()) error {
	n := len(ms)
	o := &op{insert: ms, durable: true, then: func(err error) {
		if err != nil {
			s.inSlots.release(n)
			s.log.Warn("mqtt message not acknowledged: the broker sends it again", "topic", in.topic, "err", err)
			return
		}
		ack()
	}}
	if s.waiting.Load() == 0 && s.inSlots.tryTake(n) {
		if err := s.early(o); err != nil {
			s.inSlots.release(n) // o.then does not run
			return err
		}
		return nil
	}
	s.waiting.Add(1)
	s.intake.push(func() {
		defer s.waiting.Add(-1)
		if !s.inSlots.take(n, s.fullInbox(in)) {
			return // closing: not acknowledged
		}
		if err := s.early(o); err != nil {
			s.inSlots.release(n)
		}
	})
	return nil
}

func (s *Service) check(in inbound) error {
	if len(in.topic) > s.cfg.MaxTopic {
		return fmt.Errorf("topic of %d bytes is over the limit of %d", len(in.topic), s.cfg.MaxTopic)
	}
	if err := ValidateTopic(in.topic); err != nil {
		return err
	}
	if len(in.payload) > s.cfg.MaxPayload {
		return fmt.Errorf("payload of %d bytes is over the limit of %d: %w", len(in.payload), s.cfg.MaxPayload, errdefs.ErrTooLarge)
	}
	return nil
}

// refuse logs a message that is not run, with why.
func (s *Service) refuse(in inbound, why string) {
	s.stats.refused.Add(1)
	s.log.Warn("mqtt message refused", "topic", in.topic, "qos", in.qos, "bytes", len(in.payload), "reason", why)
}

// match makes one inbox row per binding the message matches; a message
// that matches two bindings (of one function or two) runs for both.
func (s *Service) match(in inbound) []*message {
	now := time.Now()
	qos := min(in.qos, 1) // QoS 2 is served as QoS 1
	s.mu.RLock()
	defer s.mu.RUnlock()
	var ms []*message
	for fn, bs := range s.bindings {
		for _, b := range bs {
			if _, ok := Match(b.Filter, in.topic); !ok {
				continue
			}
			ms = append(ms, &message{function: fn, filter: b.Filter, reply: b.Reply, ordered: b.Ordered,
				topic: in.topic, payload: in.payload, qos: qos, retain: in.retain, dup: in.dup, received: now})
		}
	}
	return ms
}
