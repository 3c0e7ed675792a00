package logs

import (
	"context"
	"fmt"
)

// followBuffer is how many lines a follower may lag behind the writers
// before it misses some: the writers never wait for a follower.
const followBuffer = 1024

// subscriber is one follower's feed of live lines.
type subscriber struct {
	q      Query
	ch     chan event
	missed int64         // lines that did not fit in ch since the last sent; guarded by function.mu
	kick   chan struct{} // has a token when missed may be waiting for no next line
	err    error         // why ch was closed; written before the close
}

func newSubscriber(q Query) *subscriber {
	return &subscriber{q: q, ch: make(chan event, followBuffer), kick: make(chan struct{}, 1)}
}

// event is a live line, with the number of lines the follower missed just
// before it.
type event struct {
	line   Line
	seq    uint64
	missed int64
}

// publish offers a stored line to the followers, without ever waiting for
// one. f.mu is held.
func (f *function) publish(l Line, seq uint64) {
	for sub := range f.subs {
		if !sub.q.match(l) {
			continue
		}
		select {
		case sub.ch <- event{line: l, seq: seq, missed: sub.missed}:
			sub.missed = 0
		default:
			sub.missed++
			select {
			case sub.kick <- struct{}{}:
			default:
			}
		}
	}
}

// takeMissed returns the lines sub missed after the last one it was sent,
// once it has been given all the others: so the follower learns of the
// lines it missed even when no line comes after them.
func (f *function) takeMissed(sub *subscriber) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(sub.ch) > 0 {
		// Not yet: the count goes with the next event, or the next kick.
		select {
		case sub.kick <- struct{}{}:
		default:
		}
		return 0
	}
	n := sub.missed
	sub.missed = 0
	return n
}

func (sub *subscriber) end(why error) {
	sub.err = why
	close(sub.ch)
}

func (f *function) unsubscribe(sub *subscriber) {
	f.mu.Lock()
	delete(f.subs, sub)
	f.mu.Unlock()
}

// Follow calls fn with the lines Read would return, then with each new
// matching line as it is stored, until ctx ends (it returns ctx.Err()), fn
// returns an error (it returns that), the function's logs are removed
// (ErrNotFound) or the store closes (ErrUnavailable). A function with no
// logs yet is followed all the same.
//
// fn may be slow: when the follower lags more than followBuffer lines
// behind, lines are skipped for it alone, and a notice line on stream
// "edgefaas" says how many.
func (s *Store) Follow(ctx context.Context, q Query, fn func(Line) error) error {
	f, err := s.function(q.Function, true)
	if err != nil {
		return err
	}
	sub := newSubscriber(q)
	snap, err := f.snapshot(sub)
	if err != nil {
		return err
	}
	defer f.unsubscribe(sub)
	lines, last, err := snap.read(ctx, q)
	if err != nil {
		return err
	}
	last = max(last, snap.seq)
	for _, l := range lines {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(l); err != nil {
			return err
		}
	}
	return s.relay(ctx, f, sub, last, fn)
}

// relay gives fn the live lines after sequence number last, and the notices
// of the lines the follower skipped, until the follow ends.
func (s *Store) relay(ctx context.Context, f *function, sub *subscriber, last uint64, fn func(Line) error) error {
	for {
		// Lines first: a kick is only looked at once the follower has
		// caught up.
		var ev event
		var ok bool
		select {
		case ev, ok = <-sub.ch:
		default:
			select {
			case <-ctx.Done():
				return ctx.Err()
			case ev, ok = <-sub.ch:
			case <-sub.kick:
				ev, ok = event{missed: f.takeMissed(sub)}, true
			}
		}
		if !ok {
			return sub.err
		}
		if ev.missed > 0 {
			if err := fn(s.missed(sub.q.Function, ev.missed)); err != nil {
				return err
			}
		}
		// The snapshot and the subscription are taken at one instant, so
		// this only guards the invariant (and skips kick events, seq 0).
		if ev.seq > last {
			last = ev.seq
			if err := fn(ev.line); err != nil {
				return err
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

func (s *Store) missed(function string, n int64) Line {
	return Line{
		Time:     s.cfg.Clock(),
		Function: function,
		Stream:   StreamNotice,
		Text:     fmt.Sprintf("follower fell behind: skipped %d lines of output (they are in the log files)", n),
	}
}
