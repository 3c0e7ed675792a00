package mqtt

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/edgefaas/edgefaas/errdefs"
	"github.com/edgefaas/edgefaas/store"
)

// message is one inbox row: a message for one binding.
type message struct {
	id       int64
	function string
	filter   string
	reply    string
	ordered  bool
	topic    string
	payload  []byte
	qos      byte
	retain   bool
	dup      bool
	attempts int
	lastErr  string
	received time.Time

	// stored is closed once the row's insert committed (or failed:
	// storeErr), for messages handed to the workers before that (early
	// ops); nil for rows read from the database.
	stored   chan struct{}
	storeErr error
}

// outMsg is one outbox row: a reply or a dead letter.
type outMsg struct {
	id      int64
	topic   string
	payload []byte
}

// op is one change for the writer. Every field is optional; the writer
// applies them in this order in the batch's transaction.
type op struct {
	insert     []*message  // new inbox rows; their ids are set on commit
	done       int64       // inbox row to delete (handled or dead-lettered)
	retry      *attempt    // inbox row whose attempts and last error changed
	out        []*outMsg   // new outbox rows; ids set on commit
	published  int64       // outbox row to delete
	durable    bool        // fsync the WAL before answering (QoS 1 messages)
	result     chan error  // capacity 1, or nil: nobody waits
	then       func(error) // or nil: run by the writer after the commit (and fsync), with its error
	early      bool        // insert's messages are with the workers already: close their stored
	afterwards func()      // run by the writer after the commit succeeded
}

// attempt is a failed attempt to record: a copy, as the message itself
// runs again meanwhile.
type attempt struct {
	id       int64
	attempts int
	lastErr  string
}

// maxBatch bounds one group commit.
const maxBatch = 512

// queue is the inbox and outbox in SQLite. One writer goroutine on its own
// connection commits everything pending in one transaction (group commit),
// then fsyncs the WAL once if any op of the batch needs it: a QoS 1
// message pays for one fsync shared with everything that arrived with it.
type queue struct {
	db      *store.DB
	conn    *sql.Conn
	stmts   map[string]*sql.Stmt // prepared once on conn: by the SQL below
	log     *slog.Logger
	syncWAL func() error

	mu     sync.RWMutex // guards closed and the sends on ops
	closed bool
	ops    chan *op
	done   chan struct{}

	// onInbox and onOutbox hear about rows once committed.
	onInbox  func([]*message)
	onOutbox func([]*outMsg)
}

// The writer's statements, prepared once on its connection (preparing per
// statement would cost as much as the insert).
const (
	sqlInsertInbox = `INSERT INTO mqtt_inbox
		(function_name, filter, reply, ordered, topic, payload, qos, retain, dup, received_ns)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	sqlDeleteInbox  = `DELETE FROM mqtt_inbox WHERE id = ?`
	sqlUpdateInbox  = `UPDATE mqtt_inbox SET attempts = ?, last_error = ? WHERE id = ?`
	sqlInsertOutbox = `INSERT INTO mqtt_outbox (topic, payload, created_ns) VALUES (?, ?, ?)`
	sqlDeleteOutbox = `DELETE FROM mqtt_outbox WHERE id = ?`
)

func openQueue(db *store.DB, log *slog.Logger) (*queue, error) {
	conn, err := db.SQL().Conn(context.Background())
	if err != nil {
		return nil, fmt.Errorf("mqtt: writer connection: %w", err)
	}
	q := &queue{db: db, conn: conn, log: log, syncWAL: db.SyncWAL, stmts: map[string]*sql.Stmt{},
		ops: make(chan *op, 4*maxBatch), done: make(chan struct{})}
	for _, query := range []string{sqlInsertInbox, sqlDeleteInbox, sqlUpdateInbox, sqlInsertOutbox, sqlDeleteOutbox} {
		if q.stmts[query], err = conn.PrepareContext(context.Background(), query); err != nil {
			conn.Close()
			return nil, fmt.Errorf("mqtt: prepare: %w", err)
		}
	}
	return q, nil
}

func (q *queue) start() { go q.writer() }

// submit queues o. When o.result is set, it waits for the commit (and the
// fsync when o.durable) and returns its error.
func (q *queue) submit(o *op) error {
	q.mu.RLock()
	if q.closed {
		q.mu.RUnlock()
		return fmt.Errorf("mqtt: inbox closed: %w", errdefs.ErrUnavailable)
	}
	q.ops <- o
	q.mu.RUnlock()
	if o.result == nil {
		return nil
	}
	return <-o.result
}

// close commits what is queued and stops the writer.
func (q *queue) close() {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.closed = true
	close(q.ops)
	q.mu.Unlock()
	<-q.done
	if err := q.syncWAL(); err != nil {
		q.log.Error("syncing the WAL at close", "err", err)
	}
	for _, st := range q.stmts {
		st.Close()
	}
	q.conn.Close()
}

func (q *queue) writer() {
	defer close(q.done)
	batch := make([]*op, 0, maxBatch)
	for o := range q.ops {
		batch = append(batch[:0], o)
	fill:
		for len(batch) < maxBatch {
			select {
			case o, ok := <-q.ops:
				if !ok {
					break fill
				}
				batch = append(batch, o)
			default:
				break fill
			}
		}
		q.commit(batch)
	}
}

// commit applies a batch in one transaction. If it fails, every op of the
// batch gets the error: a message is then not acknowledged, and the broker
// sends it again.
//
// Committed rows go to the workers and the publisher before the fsync (new
// messages even before the commit: see Service.early): the invocation
// overlaps it. Only the acknowledgement waits for the fsync; if the power
// goes first, the broker sends the message again (run twice at worst,
// never lost).
func (q *queue) commit(batch []*op) {
	durable := false
	err := q.inTx(func() error {
		for _, o := range batch {
			durable = durable || o.durable
			if err := q.apply(o); err != nil {
				return err
			}
		}
		return nil
	})
	for _, o := range batch {
		if o.early {
			for _, m := range o.insert {
				m.storeErr = err
				close(m.stored)
			}
		}
	}
	if err == nil {
		var ins []*message
		var outs []*outMsg
		for _, o := range batch {
			if !o.early {
				ins = append(ins, o.insert...)
			}
			outs = append(outs, o.out...)
			if o.afterwards != nil {
				o.afterwards()
			}
		}
		if len(ins) > 0 {
			q.onInbox(ins)
		}
		if len(outs) > 0 {
			q.onOutbox(outs)
		}
		if durable {
			err = q.syncWAL()
		}
	}
	if err != nil {
		q.log.Error("committing to the MQTT inbox failed", "ops", len(batch), "err", err)
		err = fmt.Errorf("mqtt: inbox commit: %w", err)
	}
	for _, o := range batch {
		if o.result != nil {
			o.result <- err
		}
		if o.then != nil {
			o.then(err)
		}
	}
}

func (q *queue) apply(o *op) error {
	for _, m := range o.insert {
		res, err := q.stmts[sqlInsertInbox].Exec(m.function, m.filter, m.reply, m.ordered, m.topic, m.payload,
			m.qos, m.retain, m.dup, m.received.UnixNano())
		if err != nil {
			return err
		}
		if m.id, err = res.LastInsertId(); err != nil {
			return err
		}
	}
	if o.done != 0 {
		if _, err := q.stmts[sqlDeleteInbox].Exec(o.done); err != nil {
			return err
		}
	}
	if a := o.retry; a != nil {
		if _, err := q.stmts[sqlUpdateInbox].Exec(a.attempts, a.lastErr, a.id); err != nil {
			return err
		}
	}
	for _, m := range o.out {
		res, err := q.stmts[sqlInsertOutbox].Exec(m.topic, m.payload, time.Now().UnixNano())
		if err != nil {
			return err
		}
		if m.id, err = res.LastInsertId(); err != nil {
			return err
		}
	}
	if o.published != 0 {
		if _, err := q.stmts[sqlDeleteOutbox].Exec(o.published); err != nil {
			return err
		}
	}
	return nil
}

// inTx runs fn in a transaction on the writer's connection; BEGIN
// IMMEDIATE takes the write lock at once, as the store's transactions do.
func (q *queue) inTx(fn func() error) error {
	ctx := context.Background()
	if _, err := q.conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return err
	}
	if err := fn(); err != nil {
		_, _ = q.conn.ExecContext(ctx, "ROLLBACK")
		return err
	}
	if _, err := q.conn.ExecContext(ctx, "COMMIT"); err != nil {
		_, _ = q.conn.ExecContext(ctx, "ROLLBACK")
		return err
	}
	return nil
}

// load reads what a previous run left in the inbox and the outbox, oldest
// first.
func (q *queue) load(ctx context.Context) ([]*message, []*outMsg, error) {
	rows, err := q.conn.QueryContext(ctx, `SELECT id, function_name, filter, reply, ordered, topic, payload,
		qos, retain, dup, attempts, last_error, received_ns FROM mqtt_inbox ORDER BY id`)
	if err != nil {
		return nil, nil, fmt.Errorf("mqtt: load inbox: %w", err)
	}
	var ins []*message
	for rows.Next() {
		m := &message{}
		var ns int64
		if err := rows.Scan(&m.id, &m.function, &m.filter, &m.reply, &m.ordered, &m.topic, &m.payload,
			&m.qos, &m.retain, &m.dup, &m.attempts, &m.lastErr, &ns); err != nil {
			rows.Close()
			return nil, nil, fmt.Errorf("mqtt: load inbox: %w", err)
		}
		m.received = time.Unix(0, ns)
		ins = append(ins, m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("mqtt: load inbox: %w", err)
	}
	rows, err = q.conn.QueryContext(ctx, `SELECT id, topic, payload FROM mqtt_outbox ORDER BY id`)
	if err != nil {
		return nil, nil, fmt.Errorf("mqtt: load outbox: %w", err)
	}
	defer rows.Close()
	var outs []*outMsg
	for rows.Next() {
		m := &outMsg{}
		if err := rows.Scan(&m.id, &m.topic, &m.payload); err != nil {
			return nil, nil, fmt.Errorf("mqtt: load outbox: %w", err)
		}
		outs = append(outs, m)
	}
	return ins, outs, rows.Err()
}
