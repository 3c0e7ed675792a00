package mqtt

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"
	"unicode/utf8"
)

// slots bounds a queue's rows: take waits while it is full, so that the
// message is not acknowledged and the broker keeps it.
type slots struct {
	mu   sync.Mutex
	cond *sync.Cond
	used int
	max  int
	shut bool
}

func newSlots(max int) *slots {
	s := &slots{max: max}
	s.cond = sync.NewCond(&s.mu)
	return s
}

// take reserves n slots, waiting while they are not free; a request larger
// than the whole bound passes when the queue is empty. It returns false
// when the queue is shut. blocked is called once if take has to wait.
func (s *slots) take(n int, blocked func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	waited := false
	for !s.shut && s.used > 0 && s.used+n > s.max {
		if !waited && blocked != nil {
			blocked()
		}
		waited = true
		s.cond.Wait()
	}
	if s.shut {
		return false
	}
	s.used += n
	return true
}

// tryTake reserves n slots if they are free now.
func (s *slots) tryTake(n int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shut || (s.used > 0 && s.used+n > s.max) {
		return false
	}
	s.used += n
	return true
}

// force reserves n slots whether or not they are free.
func (s *slots) force(n int) {
	s.mu.Lock()
	s.used += n
	s.mu.Unlock()
}

func (s *slots) release(n int) {
	s.mu.Lock()
	s.used -= n
	s.mu.Unlock()
	s.cond.Broadcast()
}

func (s *slots) inUse() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.used
}

func (s *slots) close() {
	s.mu.Lock()
	s.shut = true
	s.mu.Unlock()
	s.cond.Broadcast()
}

// dispatcher runs inbox messages on a fixed number of workers. Messages of
// an ordered binding run one at a time per topic, in arrival order (a
// retry holds its lane); the others run in parallel.
type dispatcher struct {
	s     *Service
	ready *fifo[*message]

	mu     sync.Mutex
	lanes  map[string][]*message // ordered lanes: waiting messages; present while one runs
	closed bool
	timers map[*time.Timer]struct{}
	wg     sync.WaitGroup
}

func newDispatcher(s *Service) *dispatcher {
	return &dispatcher{s: s, ready: newFIFO[*message](), lanes: map[string][]*message{}, timers: map[*time.Timer]struct{}{}}
}

func laneKey(m *message) string { return m.function + "\x00" + m.filter + "\x00" + m.topic }

func (d *dispatcher) start(workers int) {
	for range workers {
		d.wg.Go(d.work)
	}
}

// add hands committed messages to the workers.
func (d *dispatcher) add(ms []*message) {
	var ready []*message
	d.mu.Lock()
	for _, m := range ms {
		if !m.ordered {
			ready = append(ready, m)
			continue
		}
		k := laneKey(m)
		if waiting, busy := d.lanes[k]; busy {
			d.lanes[k] = append(waiting, m)
			continue
		}
		d.lanes[k] = nil
		ready = append(ready, m)
	}
	d.mu.Unlock()
	d.ready.push(ready...)
}

// finished frees m's lane for the next message of its topic.
func (d *dispatcher) finished(m *message) {
	if !m.ordered {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	k := laneKey(m)
	if waiting := d.lanes[k]; len(waiting) > 0 {
		d.lanes[k] = waiting[1:]
		d.ready.push(waiting[0])
	} else {
		delete(d.lanes, k)
	}
}

// later runs m again after delay; an ordered lane stays held meanwhile.
func (d *dispatcher) later(m *message, delay time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	var t *time.Timer
	t = time.AfterFunc(delay, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		delete(d.timers, t)
		if !d.closed {
			d.ready.push(m)
		}
	})
	d.timers[t] = struct{}{}
}

// close stops the workers once their current invocations end. Messages not
// yet run stay in the inbox for the next start.
func (d *dispatcher) close() {
	d.mu.Lock()
	d.closed = true
	for t := range d.timers {
		t.Stop()
	}
	d.mu.Unlock()
	d.ready.close()
	d.wg.Wait()
}

func (d *dispatcher) work() {
	for m, ok := d.ready.pop(); ok; m, ok = d.ready.pop() {
		d.s.handle(m)
	}
}

// backoff is the wait before attempt n+1 after n failed attempts: base,
// 2 base, 4 base... capped at a minute.
func backoff(base time.Duration, n int) time.Duration {
	d := base << min(n-1, 16)
	return min(d, time.Minute)
}

// handle runs one inbox message, then records the outcome: done (with its
// reply), another attempt later, or a dead letter.
func (s *Service) handle(m *message) {
	m.attempts++
	ctx := context.WithoutCancel(s.ctx)
	out := s.cfg.Invoke(ctx, Delivery{
		Function: m.function, Topic: m.topic, Payload: m.payload, QoS: m.qos,
		Retained: m.retain, Duplicate: m.dup, Attempt: m.attempts,
	})
	log := s.log.With("function", m.function, "topic", m.topic, "attempt", m.attempts)
	if !s.stored(m) {
		// Not in the inbox and not acknowledged: the broker sends it again.
		s.disp.finished(m)
		return
	}
	switch {
	case out.OK:
		var outs []*outMsg
		if m.reply != "" {
			if r, err := s.replyTopic(m); err != nil {
				log.Warn("reply not published: bad reply topic", "reply", m.reply, "err", err)
			} else if !s.publishNow(r, out.Body) {
				outs = append(outs, &outMsg{topic: r, payload: out.Body})
			}
		}
		s.finish(m, outs)
	case !out.Permanent && m.attempts <= s.cfg.Retries:
		m.lastErr = out.Error
		wait := backoff(s.cfg.Backoff, m.attempts)
		log.Info("invocation failed, retrying", "status", out.Status, "err", out.Error, "retry_in", wait.String())
		s.stats.retries.Add(1)
		if err := s.q.submit(&op{retry: &attempt{id: m.id, attempts: m.attempts, lastErr: m.lastErr}}); err != nil {
			log.Error("recording the attempt", "err", err)
		}
		s.disp.later(m, wait)
	default:
		m.lastErr = out.Error
		log.Warn("invocation failed for good: dead letter", "status", out.Status, "err", out.Error,
			"dead_letter", DeadLetterPrefix+m.function)
		s.stats.deadLetters.Add(1)
		s.finish(m, []*outMsg{{topic: DeadLetterPrefix + m.function, payload: deadLetter(m, out)}})
	}
}

// publishNow publishes a reply at once when the broker is reachable and
// the outbox is empty (so replies do not overtake a backlog), and reports
// whether the broker acknowledged it. The message stays in the inbox until
// then: a crash before the acknowledgement runs it again (a duplicate at
// worst). When it fails, the reply goes to the durable outbox instead.
func (s *Service) publishNow(topic string, payload []byte) bool {
	if s.outSlots.inUse() > 0 {
		return false
	}
	ctx, cancel := context.WithTimeout(s.ctx, publishTimeout)
	defer cancel()
	if err := s.link.publish(ctx, topic, payload); err != nil {
		return false
	}
	s.stats.published.Add(1)
	return true
}

// finish deletes m from the inbox and queues its replies in the same
// transaction, after waiting for room in the outbox. It does not wait for
// the commit: the worker and the lane move on (a crash before the commit
// runs the message again, as any crash may).
func (s *Service) finish(m *message, outs []*outMsg) {
	if len(outs) > 0 && !s.outSlots.take(len(outs), func() {
		s.log.Warn("outbox full: invocations wait until replies are published", "outbox", s.cfg.OutboxSize)
	}) {
		return // closing: the message stays in the inbox and runs again
	}
	err := s.q.submit(&op{done: m.id, out: outs, then: func(err error) {
		if err != nil {
			s.log.Error("recording a handled message: it runs again after a restart", "function", m.function, "err", err)
			s.outSlots.release(len(outs))
			return
		}
		s.inSlots.release(1)
		s.stats.handled.Add(1)
	}})
	if err != nil {
		s.log.Error("recording a handled message", "function", m.function, "err", err)
		s.outSlots.release(len(outs))
		return
	}
	s.disp.finished(m)
}

// replyTopic expands m's reply template for its topic.
func (s *Service) replyTopic(m *message) (string, error) {
	t, err := ParseTemplate(m.reply, m.filter)
	if err != nil {
		return "", err
	}
	wild, ok := Match(m.filter, m.topic)
	if !ok {
		return "", fmt.Errorf("topic %q does not match %q", m.topic, m.filter)
	}
	r, err := t.Expand(m.topic, wild)
	if err != nil {
		return "", err
	}
	// A reply that its own binding would take again is an endless loop.
	if _, loop := Match(m.filter, r); loop {
		return "", fmt.Errorf("reply topic %q matches the binding's own filter %q (a loop)", r, m.filter)
	}
	return r, nil
}

// DeadLetter is the JSON body published to edgefaas/deadletter/{function}.
type DeadLetter struct {
	Function string    `json:"function"`
	Topic    string    `json:"topic"`
	QoS      byte      `json:"qos"`
	Retained bool      `json:"retained"`
	Received time.Time `json:"received"`
	Attempts int       `json:"attempts"`
	Status   string    `json:"status"` // the last attempt's X-Faas-Status
	Error    string    `json:"error"`
	// Payload is the original message: as text when it is UTF-8, else
	// base64 in PayloadBase64.
	Payload       string `json:"payload,omitempty"`
	PayloadBase64 []byte `json:"payload_base64,omitempty"`
}

func deadLetter(m *message, out Outcome) []byte {
	dl := DeadLetter{Function: m.function, Topic: m.topic, QoS: m.qos, Retained: m.retain,
		Received: m.received.UTC(), Attempts: m.attempts, Status: out.Status, Error: out.Error}
	if utf8.Valid(m.payload) {
		dl.Payload = string(m.payload)
	} else {
		dl.PayloadBase64 = m.payload
	}
	b, _ := json.Marshal(dl) // plain types: cannot fail
	return b
}
