// Package store is the agent's SQLite database: the function registry and
// the image records, kept across restarts. It is the only package that opens
// SQLite; packages that need tables of their own (metering) add a migration
// file under migrations/ and reach the database through DB.SQL and DB.Tx.
//
// It holds metadata only: image blobs live on disk in package images, and
// running instances are the agent's state, not the registry's.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"sync"
	"time"

	_ "github.com/mattn/go-sqlite3" // registers the "sqlite3" driver
)

// busyTimeout is how long a connection waits for another one's write lock
// before it gives up with SQLITE_BUSY.
const busyTimeout = 5 * time.Second

// DB is an open store. It is safe for concurrent use.
type DB struct {
	db   *sql.DB
	path string           // the database file, for SyncWAL
	now  func() time.Time // the clock; tests replace it

	beating sync.Mutex // held while a Heartbeat write is in flight
}

// Open opens the agent's database at path, creating the file if needed, and
// brings its schema up to date. The directory must exist.
func Open(ctx context.Context, path string) (*DB, error) {
	return OpenWith(ctx, path, migrationFiles)
}

// OpenWith opens the database at path with the store's settings (WAL,
// busy timeout, immediate transactions) and brings its schema up to date
// with the migrations in fsys, files named migrations/NNNN_what.sql. It is
// how another program's package (the cloud controller) keeps a database of
// its own without opening SQLite itself. The directory must exist.
func OpenWith(ctx context.Context, path string, fsys fs.FS) (*DB, error) {
	db, err := sql.Open("sqlite3", dsn(path))
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	s := &DB{db: db, path: path, now: time.Now}
	if err := s.init(ctx, fsys); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	return s, nil
}

// dsn builds go-sqlite3's connection string. The pragmas are in the DSN,
// not run once after opening, because database/sql opens connections as it
// needs them and each one must get them.
//
// _txlock=immediate makes every transaction take the write lock at BEGIN.
// With the default deferred BEGIN, a transaction that reads then writes
// while another connection commits fails with SQLITE_BUSY at once, without
// waiting for busy_timeout, because its read snapshot is stale.
func dsn(path string) string {
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", "NORMAL")
	q.Set("_foreign_keys", "on")
	q.Set("_busy_timeout", fmt.Sprint(busyTimeout.Milliseconds()))
	q.Set("_txlock", "immediate")
	// A file: URI, so that a path holding '?' or '#' stays a path.
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

func (s *DB) init(ctx context.Context, fsys fs.FS) error {
	var mode string
	if err := s.db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return err
	}
	if mode != "wal" {
		// Some file systems (network ones) cannot do WAL; SQLite then
		// silently keeps the rollback journal.
		return fmt.Errorf("journal_mode is %q, want wal", mode)
	}
	return migrate(ctx, s.db, fsys, -1)
}

// Close closes the database. The last connection to close checkpoints the
// WAL into the main file.
func (s *DB) Close() error {
	return s.db.Close()
}

// SQL returns the underlying database for packages that keep tables of
// their own here.
func (s *DB) SQL() *sql.DB {
	return s.db
}

// Tx runs fn in a transaction that holds the write lock from its start. It
// commits when fn returns nil and rolls back otherwise, or when fn panics.
func (s *DB) Tx(ctx context.Context, fn func(*sql.Tx) error) (err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	defer func() {
		if p := recover(); p != nil {
			_ = tx.Rollback()
			panic(p)
		}
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}

// timeFormat is RFC 3339 in UTC with a fixed nine-digit fraction, so that
// stored times sort as text.
const timeFormat = "2006-01-02T15:04:05.000000000Z07:00"

func formatTime(t time.Time) string {
	return t.UTC().Format(timeFormat)
}

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("store: bad time %q in database: %w", s, err)
	}
	return t, nil
}

// notFound reports whether err is sql.ErrNoRows.
func notFound(err error) bool {
	return errors.Is(err, sql.ErrNoRows)
}
