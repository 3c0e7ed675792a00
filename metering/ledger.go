package metering

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgefaas/edgefaas/errdefs"
	"github.com/edgefaas/edgefaas/store"
)

// Config configures a Ledger. Zero values have the defaults given.
type Config struct {
	Retention  time.Duration    // raw records older than this are rolled up per function and hour; 7 days
	KeepHourly time.Duration    // hourly rows older than this are deleted, so disk use stays bounded; 400 days
	SyncEvery  time.Duration    // how often the WAL is fsynced when something was written; 1s
	RequireAck bool             // a cloud controller acknowledges records; false: every record counts as acknowledged
	Clock      func() time.Time // time.Now
	Logger     *slog.Logger     // slog.Default()
}

func (c *Config) setDefaults() {
	if c.Retention <= 0 {
		c.Retention = 7 * 24 * time.Hour
	}
	if c.KeepHourly <= 0 {
		c.KeepHourly = 400 * 24 * time.Hour
	}
	if c.SyncEvery <= 0 {
		c.SyncEvery = time.Second
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

const (
	// maxBatch bounds one group commit: enough to take every caller of a
	// busy gateway at once, small enough to keep a commit short.
	maxBatch = 512
	// rollupEvery is how often the ledger rolls up by itself.
	rollupEvery = time.Hour
)

// Ledger is the activation ledger. It is safe for concurrent use.
//
// Record hands its record to a single writer goroutine, which commits
// everything pending in one transaction (group commit); a Record that finds
// nothing being written commits its own record at once instead. A committed record
// is in the WAL and survives the agent being killed; a syncer goroutine
// fsyncs the WAL at most SyncEvery after a commit, which bounds what a power
// loss can take.
type Ledger struct {
	db  *store.DB
	cfg Config
	log *slog.Logger

	// The writer's own connection, with the insert prepared once on it.
	conn   *sql.Conn
	insert *sql.Stmt

	// syncWAL is db.SyncWAL; tests count the calls.
	syncWAL func() error

	// mu guards closed and the sends on reqs: Close takes it for writing
	// before it closes reqs.
	mu     sync.RWMutex
	closed bool
	reqs   chan *pending

	// writeMu serializes the ledger's own write transactions (commits,
	// Ack, Rollup): a long rollup makes records wait, not fail with
	// SQLITE_BUSY after the store's busy timeout.
	writeMu sync.Mutex

	dirty   atomic.Bool   // something was committed since the last sync
	written chan struct{} // capacity 1: wakes the syncer after a commit

	// ctx is cancelled by Close once the writer has drained: it stops the
	// syncer and the roll-up loop, and aborts a roll-up in progress.
	ctx        context.Context
	cancel     context.CancelFunc
	writerDone chan struct{}
	wg         sync.WaitGroup // the syncer and the roll-up loop

	// testHookCommit, when set (by tests, before any record), is called by
	// the writer with each batch's size before it takes writeMu.
	testHookCommit func(n int)
}

// pending is a record waiting for its commit.
type pending struct {
	rec  Record
	done chan result // capacity 1: the writer never blocks on it
}

type result struct {
	seq int64
	err error
}

// Open starts a ledger on db, whose schema has the metering tables. It rolls
// up once before it returns, then every hour in the background.
func Open(db *store.DB, cfg Config) (*Ledger, error) {
	if db == nil {
		return nil, fmt.Errorf("metering: no database: %w", errdefs.ErrInvalid)
	}
	cfg.setDefaults()
	l := &Ledger{
		db:         db,
		cfg:        cfg,
		log:        cfg.Logger.With("component", "metering"),
		syncWAL:    db.SyncWAL,
		reqs:       make(chan *pending, 2*maxBatch),
		written:    make(chan struct{}, 1),
		writerDone: make(chan struct{}),
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	var err error
	if l.conn, err = db.SQL().Conn(l.ctx); err != nil {
		return nil, fmt.Errorf("metering: writer connection: %w", err)
	}
	if l.insert, err = l.conn.PrepareContext(l.ctx, insertRecord); err != nil {
		l.conn.Close()
		return nil, fmt.Errorf("metering: prepare insert: %w", err)
	}
	// A roll-up that fails is logged, not fatal: records must keep being
	// taken, and the next hour tries again.
	if _, err := l.rollup(context.Background()); err != nil {
		l.log.Error("roll-up at start failed", "err", err)
	}
	go l.writer()
	l.wg.Add(2)
	go l.syncer()
	go l.rollupLoop()
	return l, nil
}

// Record stores r and returns its sequence number once the record is
// committed. Concurrent callers share one commit.
//
// A ctx already done when Record is called stores nothing and returns
// ctx.Err(). Once the record is queued it is committed whatever happens to
// ctx, because the invocation did happen: if ctx ends first, Record
// returns ctx.Err() and the record is stored nonetheless. Callers that
// must not lose a record pass a context that is not cancelled with the
// caller's request (context.WithoutCancel).
func (l *Ledger) Record(ctx context.Context, r Record) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := r.validate(); err != nil {
		return 0, err
	}
	if seq, ok, err := l.recordAlone(r); ok {
		return seq, err
	}
	p := &pending{rec: r, done: make(chan result, 1)}
	if err := l.enqueue(ctx, p); err != nil {
		return 0, err
	}
	select {
	case res := <-p.done:
		return res.seq, res.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func (l *Ledger) enqueue(ctx context.Context, p *pending) error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return fmt.Errorf("metering: ledger closed: %w", errdefs.ErrUnavailable)
	}
	select {
	case l.reqs <- p:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close commits the records already queued, syncs the WAL and stops the
// ledger's goroutines. Later calls return ErrUnavailable, except Close,
// which returns nil.
func (l *Ledger) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.reqs)
	l.mu.Unlock()

	<-l.writerDone
	l.insert.Close()
	l.conn.Close()
	l.cancel()
	l.wg.Wait()
	if l.dirty.Swap(false) {
		if err := l.syncWAL(); err != nil {
			return fmt.Errorf("metering: close: %w", err)
		}
	}
	return nil
}

// checkOpen returns ErrUnavailable once the ledger is closed.
func (l *Ledger) checkOpen() error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return fmt.Errorf("metering: ledger closed: %w", errdefs.ErrUnavailable)
	}
	return nil
}

// syncer fsyncs the WAL SyncEvery after a commit. It sleeps while nothing
// is written: an idle gateway does no I/O.
func (l *Ledger) syncer() {
	defer l.wg.Done()
	for {
		select {
		case <-l.written:
		case <-l.ctx.Done():
			return
		}
		t := time.NewTimer(l.cfg.SyncEvery)
		select {
		case <-t.C:
		case <-l.ctx.Done():
			t.Stop()
			return // Close does the last sync
		}
		// Swap before syncing: a commit that lands during the fsync sets
		// dirty again and wakes this loop once more.
		if l.dirty.Swap(false) {
			if err := l.syncWAL(); err != nil {
				l.dirty.Store(true)
				l.log.Error("syncing the WAL failed", "err", err)
			}
		}
	}
}

func (l *Ledger) rollupLoop() {
	defer l.wg.Done()
	t := time.NewTicker(rollupEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-l.ctx.Done():
			return
		}
		n, err := l.rollup(l.ctx)
		switch {
		case l.ctx.Err() != nil:
			return
		case err != nil:
			l.log.Error("roll-up failed", "err", err)
		case n > 0:
			l.log.Debug("rolled up", "records", n)
		}
	}
}
