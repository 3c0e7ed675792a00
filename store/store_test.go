package store

import (
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
	"time"

	"github.com/edgefaas/edgefaas/api"
	"github.com/edgefaas/edgefaas/errdefs"
)

// openTest opens a fresh store in a real file (go-sqlite3's :memory: gives
// every pooled connection its own empty database) and closes it at the end.
func openTest(t *testing.T) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "edgefaas.db")
	db, err := Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

func TestOpenPragmas(t *testing.T) {
	db, _ := openTest(t)
	ctx := t.Context()
	// Hold several connections at once so the pool has to open new ones:
	// each must have the pragmas, not just the first.
	var conns []*sql.Conn
	for range 3 {
		c, err := db.SQL().Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	tests := []struct {
		name, pragma, want string
	}{
		{name: "WAL", pragma: "journal_mode", want: "wal"},
		{name: "synchronous NORMAL", pragma: "synchronous", want: "1"},
		{name: "foreign keys", pragma: "foreign_keys", want: "1"},
		{name: "busy timeout", pragma: "busy_timeout", want: "5000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i, c := range conns {
				var got string
				if err := c.QueryRowContext(ctx, "PRAGMA "+tt.pragma).Scan(&got); err != nil {
					t.Fatal(err)
				}
				if got != tt.want {
					t.Errorf("connection %d: PRAGMA %s = %q, want %q", i, tt.pragma, got, tt.want)
				}
			}
		})
	}
}

func TestOpenCreatesFile(t *testing.T) {
	for _, name := range []string{"edgefaas.db", "odd?name#1 %41.db"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), name)
			db, err := Open(t.Context(), path)
			if err != nil {
				t.Fatalf("Open(%q): %v", path, err)
			}
			defer db.Close()
			if _, err := os.Stat(path); err != nil {
				t.Errorf("database file: %v", err)
			}
			if _, err := os.Stat(path + "-wal"); err != nil {
				t.Errorf("WAL file: %v", err)
			}
		})
	}
}

func TestOpenMissingDirectory(t *testing.T) {
	_, err := Open(t.Context(), filepath.Join(t.TempDir(), "no", "such", "dir", "x.db"))
	if err == nil {
		t.Fatal("Open in a missing directory succeeded")
	}
}

func TestReopenKeepsData(t *testing.T) {
	ctx := t.Context()
	db, path := openTest(t)
	img := testImage(1, "hello:1")
	if err := db.PutImage(ctx, img); err != nil {
		t.Fatal(err)
	}
	f := api.Function{Spec: api.FunctionSpec{Name: "hello", Image: "hello:1"}, ImageDigest: img.Digest}
	for range 2 {
		if _, err := db.PutFunction(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer db.Close()
	got, err := db.Function(ctx, "hello")
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 2 || got.Spec.Image != "hello:1" || got.ImageDigest != img.Digest {
		t.Errorf("after reopen: %+v, want version 2 of hello:1", got)
	}
	if gotImg, err := db.Image(ctx, "hello:1"); err != nil || gotImg.Digest != img.Digest {
		t.Errorf("Image(hello:1) after reopen = %v, %v, want %s", gotImg.Digest, err, img.Digest)
	}
	var applied int
	if err := db.SQL().QueryRowContext(ctx, "SELECT COUNT(*) FROM schema_migrations").Scan(&applied); err != nil {
		t.Fatal(err)
	}
	if want := len(mustLoad(t, migrationFiles)); applied != want {
		t.Errorf("schema_migrations has %d rows after reopen, want %d (each applied once)", applied, want)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	ctx := t.Context()
	db, path := openTest(t)
	if _, err := db.SQL().ExecContext(ctx, "INSERT INTO schema_migrations VALUES (999, ?)", formatTime(time.Now())); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err := Open(ctx, path)
	if !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("Open of a database from a newer binary = %v, want ErrInvalid", err)
	}
}

func TestTx(t *testing.T) {
	errBoom := errors.New("boom")
	tests := []struct {
		name    string
		fn      func(*sql.Tx) error
		panics  bool
		wantErr error
		wantRow bool
	}{
		{name: "commit on nil", fn: func(*sql.Tx) error { return nil }, wantRow: true},
		{name: "rollback on error", fn: func(*sql.Tx) error { return errBoom }, wantErr: errBoom},
		{name: "rollback on panic", fn: func(*sql.Tx) error { panic(errBoom) }, panics: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, _ := openTest(t)
			ctx := t.Context()
			if _, err := db.SQL().ExecContext(ctx, "CREATE TABLE t (x INTEGER)"); err != nil {
				t.Fatal(err)
			}
			err := func() (err error) {
				defer func() {
					if p := recover(); p != nil && !tt.panics {
						t.Fatalf("unexpected panic %v", p)
					}
				}()
				return db.Tx(ctx, func(tx *sql.Tx) error {
					if _, err := tx.ExecContext(ctx, "INSERT INTO t VALUES (1)"); err != nil {
						return err
					}
					return tt.fn(tx)
				})
			}()
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("Tx = %v, want %v", err, tt.wantErr)
			}
			var n int
			if err := db.SQL().QueryRowContext(ctx, "SELECT COUNT(*) FROM t").Scan(&n); err != nil {
				t.Fatal(err)
			}
			if got := n == 1; got != tt.wantRow {
				t.Errorf("row committed: %v, want %v", got, tt.wantRow)
			}
			// A transaction left open would hold the write lock: this
			// would then fail with SQLITE_BUSY after busy_timeout.
			if _, err := db.SQL().ExecContext(ctx, "INSERT INTO t VALUES (2)"); err != nil {
				t.Errorf("write after Tx: %v", err)
			}
		})
	}
}

// TestOpenWith: another schema (the controller's) is migrated into its own
// file with the same settings, and reopening applies nothing twice.
func TestOpenWith(t *testing.T) {
	fsys := fstest.MapFS{
		"migrations/0001_a.sql": {Data: []byte("CREATE TABLE a (x INTEGER NOT NULL);")},
		"migrations/0002_b.sql": {Data: []byte("INSERT INTO a (x) VALUES (1);")},
	}
	path := filepath.Join(t.TempDir(), "other.db")
	for range 2 {
		db, err := OpenWith(t.Context(), path, fsys)
		if err != nil {
			t.Fatal(err)
		}
		var n int
		if err := db.SQL().QueryRowContext(t.Context(), "SELECT COUNT(*) FROM a").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Fatalf("rows in a: got %d, want 1", n)
		}
		if hasTable(t, db.SQL(), "functions") {
			t.Fatal("the agent's schema was applied too")
		}
		db.Close()
	}
}
