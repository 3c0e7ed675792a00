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
	s     *Service
	queue *fifo[*outMsg]
	wg    sync.WaitGroup

	mu      sync.Mutex
	failing bool // log an outage once, not per message
}

func newPublisher(s *Service) *publisher {
	return &publisher{s: s, queue: newFIFO[*outMsg]()}
}

func (p *publisher) start(window int) {
	for range window {
		p.wg.Go(p.run)
	}
}

func (p *publisher) add(ms []*outMsg) { p.queue.push(ms...) }

// close stops publishing; what is not yet acknowledged stays in the outbox
// for the next start.
func (p *publisher) close() {
	p.queue.close()
	p.wg.Wait()
}

func (p *publisher) run() {
	s := p.s
	for m, ok := p.queue.pop(); ok; m, ok = p.queue.pop() {
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
