package mqtt

import (
	"context"
	"sync"
	"time"
)

// publishTimeout bounds one publish: a broker that does not acknowledge
// within it is tried again (a duplicate at worst: QoS 1 is at least once).
const publishTimeout = 10 * time.Second

// publisher sends the outbox at QoS 1 with a bounded window of publishes in
// flight, so that a backlog built up during an outage is sent at a pace the
// broker acknowledges rather than all at once. A row is deleted only once
// the broker acknowledged it.
type publisher struct {
	s *Service

	mu     sync.Mutex
	cond   *sync.Cond
	queue  []*outMsg
	closed bool
	wg     sync.WaitGroup

	failing bool // guarded by mu: log an outage once, not per message
}

func newPublisher(s *Service) *publisher {
	p := &publisher{s: s}
	p.cond = sync.NewCond(&p.mu)
	return p
}

func (p *publisher) start(window int) {
	for range window {
		p.wg.Go(p.run)
	}
}

func (p *publisher) add(ms []*outMsg) {
	p.mu.Lock()
	p.queue = append(p.queue, ms...)
	p.mu.Unlock()
	p.cond.Broadcast()
}

func (p *publisher) next() *outMsg {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.queue) == 0 && !p.closed {
		p.cond.Wait()
	}
	if p.closed {
		return nil
	}
	m := p.queue[0]
	p.queue[0] = nil
	p.queue = p.queue[1:]
	return m
}

// close stops publishing; what is not yet acknowledged stays in the outbox
// for the next start.
func (p *publisher) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.cond.Broadcast()
	p.wg.Wait()
}

func (p *publisher) run() {
	s := p.s
	for m := p.next(); m != nil; m = p.next() {
		for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
			ctx, cancel := context.WithTimeout(s.ctx, publishTimeout)
			err := s.link.publish(ctx, m.topic, m.payload)
			cancel()
			if err == nil {
				p.ok()
				break
			}
			if s.ctx.Err() != nil {
				return
			}
			p.failed(m, err)
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-s.ctx.Done():
				t.Stop()
				return
			}
		}
		s.stats.published.Add(1)
		if err := s.q.submit(&op{published: m.id, afterwards: func() { s.outSlots.release(1) }}); err != nil {
			s.log.Error("recording a published reply", "topic", m.topic, "err", err)
		}
	}
}

func (p *publisher) ok() {
	p.mu.Lock()
	was := p.failing
	p.failing = false
	p.mu.Unlock()
	if was {
		p.s.log.Info("publishing replies again")
	}
}

func (p *publisher) failed(m *outMsg, err error) {
	p.mu.Lock()
	was := p.failing
	p.failing = true
	p.mu.Unlock()
	if !was {
		p.s.log.Warn("publishing replies failed: they wait in the outbox", "topic", m.topic, "err", err)
	}
}
