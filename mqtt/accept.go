package mqtt

import (
	"fmt"
	"time"

	"github.com/edgefaas/edgefaas/errdefs"
)

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
// unacknowledged. paho's router must never block: it also carries the
// PUBACKs of the agent's own publications, so a blocked router stops the
// replies that would make room (a deadlock), and misses PINGRESPs.
//
// The broker's in-flight window does not bound the intake (mosquitto 2.0
// sends past its window of 20 once acknowledgements flow), so it has a
// bound of its own: min(inbox, 1000) messages or 16 MiB. Past it the link
// sheds: it takes no message, acknowledges none, until the inbox has room
// again; then it reconnects, and the broker sends what it kept (the
// unacknowledged ones marked DUP first, in order).
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
	if s.shedding.Load() {
		s.stats.deferred.Add(1)
		return nil
	}
	if s.waiting.Load() == 0 && s.inSlots.tryTake(n) {
		if err := s.early(o); err != nil {
			s.inSlots.release(n) // o.then does not run
			return err
		}
		return nil
	}
	size := len(in.payload) + len(in.topic) + 512 // and the bookkeeping
	if !s.intakeCount.tryTake(1) {
		s.shed()
		return nil
	}
	if !s.intakeBytes.tryTake(size) {
		s.intakeCount.release(1)
		s.shed()
		return nil
	}
	s.waiting.Add(1)
	s.intake.push(func() {
		defer func() {
			s.waiting.Add(-1)
			s.intakeCount.release(1)
			s.intakeBytes.release(size)
		}()
		if !s.inSlots.take(n, s.fullInbox(in)) {
			return // closing: not acknowledged
		}
		if err := s.early(o); err != nil {
			s.inSlots.release(n)
		}
	})
	return nil
}

// shed starts leaving messages with the broker (see acceptLater).
func (s *Service) shed() {
	s.stats.deferred.Add(1)
	if !s.shedding.Swap(true) {
		s.log.Warn("inbox full: leaving messages with the broker, unacknowledged, until the inbox has room",
			"inbox", s.cfg.InboxSize)
	}
}

// drained reports whether shedding can stop: the intake is empty and the
// inbox at most a tenth full. Each stop costs a reconnect, and with it a
// few duplicates (acknowledgements and replies in flight at the
// disconnect), so it waits for room for many messages.
func (s *Service) drained() bool {
	return s.shedding.Load() && s.waiting.Load() == 0 && s.inSlots.inUse() <= s.cfg.InboxSize/10
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
