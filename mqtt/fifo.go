package mqtt

import "sync"

// fifo is an unbounded first-in first-out queue that workers wait on. Its
// bound is elsewhere: the rows it holds are counted by slots.
type fifo[T any] struct {
	mu     sync.Mutex
	cond   *sync.Cond
	items  []T
	closed bool
}

func newFIFO[T any]() *fifo[T] {
	f := &fifo[T]{}
	f.cond = sync.NewCond(&f.mu)
	return f
}

func (f *fifo[T]) push(items ...T) {
	f.mu.Lock()
	f.items = append(f.items, items...)
	f.mu.Unlock()
	f.cond.Broadcast()
}

// pop waits for an item; it returns false once the queue is closed.
func (f *fifo[T]) pop() (T, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for len(f.items) == 0 && !f.closed {
		f.cond.Wait()
	}
	var zero T
	if f.closed {
		return zero, false
	}
	it := f.items[0]
	f.items[0] = zero
	f.items = f.items[1:]
	return it, true
}

// close wakes every waiting pop; items left are dropped (they are in the
// database).
func (f *fifo[T]) close() {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	f.cond.Broadcast()
}
