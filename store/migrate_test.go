package store

import (
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/edgefaas/edgefaas/errdefs"
)

// rawDB opens a database file with the store's settings but no migrations.
func rawDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", dsn(filepath.Join(t.TempDir(), "raw.db")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func mustLoad(t *testing.T, fsys fs.FS) []migration {
	t.Helper()
	ms, err := loadMigrations(fsys)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

func exec(t *testing.T, db *sql.DB, query string, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(t.Context(), query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

func hasTable(t *testing.T, db *sql.DB, name string) bool {
	t.Helper()
	var n int
	err := db.QueryRowContext(t.Context(), "SELECT COUNT(*) FROM sqlite_schema WHERE name = ?", name).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n > 0
}

// TestMigrations applies each migration to a database holding the data of
// the versions before it, and checks the data survives and the schema is
// the new one.
func TestMigrations(t *testing.T) {
	const digest = "sha256:" + "ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12"
	tests := []struct {
		version int
		seed    func(t *testing.T, db *sql.DB) // data of version-1
		check   func(t *testing.T, db *sql.DB)
	}{
		{
			version: 1,
			seed:    func(*testing.T, *sql.DB) {},
			check: func(t *testing.T, db *sql.DB) {
				exec(t, db, `INSERT INTO functions VALUES ('f', ?, '{"name":"f"}', 1, 'c', 'u')`, digest)
				for _, idx := range []string{"functions", "functions_image_digest"} {
					if !hasTable(t, db, idx) {
						t.Errorf("no %s after version 1", idx)
					}
				}
				_, err := db.ExecContext(t.Context(), `INSERT INTO functions VALUES ('g', '', 'not json', 1, 'c', 'u')`)
				if err == nil {
					t.Error("functions accepted a spec that is not JSON")
				}
			},
		},
		{
			version: 2,
			seed: func(t *testing.T, db *sql.DB) {
				exec(t, db, `INSERT INTO functions VALUES ('f', ?, '{"name":"f"}', 3, 'c', 'u')`, digest)
			},
			check: func(t *testing.T, db *sql.DB) {
				var version int
				if err := db.QueryRowContext(t.Context(), "SELECT version FROM functions WHERE name = 'f'").Scan(&version); err != nil || version != 3 {
					t.Errorf("function f after version 2: version %d, %v, want 3", version, err)
				}
				exec(t, db, `INSERT INTO images VALUES (?, 'linux/amd64', 1, 'c', '{}')`, digest)
				exec(t, db, `INSERT INTO image_names VALUES ('f:latest', ?)`, digest)
				// Foreign keys are on: a name cannot point at nothing, and
				// deleting an image takes its names along.
				if _, err := db.ExecContext(t.Context(), `INSERT INTO image_names VALUES ('g:latest', 'sha256:none')`); err == nil {
					t.Error("image_names accepted a name for a missing image")
				}
				exec(t, db, `DELETE FROM images WHERE digest = ?`, digest)
				var names int
				if err := db.QueryRowContext(t.Context(), "SELECT COUNT(*) FROM image_names").Scan(&names); err != nil || names != 0 {
					t.Errorf("names left after deleting their image: %d, %v", names, err)
				}
			},
		},
		{
			version: 3,
			seed: func(t *testing.T, db *sql.DB) {
				exec(t, db, `INSERT INTO functions VALUES ('f', ?, '{"name":"f"}', 2, 'c', 'u')`, digest)
				exec(t, db, `INSERT INTO images VALUES (?, 'linux/amd64', 1, 'c', '{}')`, digest)
			},
			check: func(t *testing.T, db *sql.DB) {
				var version int
				if err := db.QueryRowContext(t.Context(), "SELECT version FROM functions WHERE name = 'f'").Scan(&version); err != nil || version != 2 {
					t.Errorf("function f after version 3: version %d, %v, want 2", version, err)
				}
				for _, name := range []string{"metering_records", "metering_records_start", "metering_records_function_start",
					"metering_hourly", "metering_ack"} {
					if !hasTable(t, db, name) {
						t.Errorf("no %s after version 3", name)
					}
				}
				var acked int64
				if err := db.QueryRowContext(t.Context(), "SELECT acked_seq FROM metering_ack").Scan(&acked); err != nil || acked != 0 {
					t.Errorf("acked_seq = %d, %v, want 0", acked, err)
				}
				const insert = `INSERT INTO metering_records (call_id, function_name, image_digest, trigger_kind, start_ns,
					duration_ns, memory_bytes, cpu_ns, cold, init_ns, status, request_bytes, response_bytes, billed_ms, kib_ms)
					VALUES ('c', 'f', '', 'http', 1, 1, 1024, 0, ?, 0, 'ok', 0, 0, 100, 100)`
				// AUTOINCREMENT: the seq of a deleted last row is not handed out again.
				exec(t, db, insert, 0)
				exec(t, db, `DELETE FROM metering_records`)
				exec(t, db, insert, 1)
				var seq int64
				if err := db.QueryRowContext(t.Context(), "SELECT seq FROM metering_records").Scan(&seq); err != nil || seq != 2 {
					t.Errorf("seq after a delete = %d, %v, want 2 (never reused)", seq, err)
				}
				if _, err := db.ExecContext(t.Context(), insert, 2); err == nil {
					t.Error("metering_records accepted cold = 2")
				}
				exec(t, db, `INSERT INTO metering_hourly VALUES ('f', 0, 1, 0, 0, 100, 100, 0, 0, 0, 0, 0)`)
				if _, err := db.ExecContext(t.Context(), `INSERT INTO metering_hourly VALUES ('f', 0, 1, 0, 0, 100, 100, 0, 0, 0, 0, 0)`); err == nil {
					t.Error("metering_hourly accepted two rows for one function and hour")
				}
			},
		},
		{
			version: 4,
			seed: func(t *testing.T, db *sql.DB) {
				exec(t, db, `INSERT INTO functions VALUES ('f', ?, '{"name":"f"}', 2, 'c', 'u')`, digest)
			},
			check: func(t *testing.T, db *sql.DB) {
				var version int
				if err := db.QueryRowContext(t.Context(), "SELECT version FROM functions WHERE name = 'f'").Scan(&version); err != nil || version != 2 {
					t.Errorf("function f after version 4: version %d, %v, want 2", version, err)
				}
				if !hasTable(t, db, "heartbeat") {
					t.Fatal("no heartbeat after version 4")
				}
				exec(t, db, `INSERT INTO heartbeat VALUES (1, 5)`)
				for _, bad := range []string{`INSERT INTO heartbeat VALUES (2, 5)`, `INSERT INTO heartbeat VALUES (1, 6)`,
					`UPDATE heartbeat SET beat_ns = -1`} {
					if _, err := db.ExecContext(t.Context(), bad); err == nil {
						t.Errorf("heartbeat accepted %s: it is one row with a time", bad)
					}
				}
			},
		},
		{
			version: 5,
			seed: func(t *testing.T, db *sql.DB) {
				exec(t, db, `INSERT INTO heartbeat VALUES (1, 5)`)
			},
			check: func(t *testing.T, db *sql.DB) {
				if !hasTable(t, db, "async_calls") {
					t.Fatal("no async_calls after version 5")
				}
				const insert = `INSERT INTO async_calls (call_id, function_name, method, path, query, header_json, body,
					callback_url, created_ns, state) VALUES (?, 'f', 'POST', '/', '', '{}', x'', '', 1, ?)`
				exec(t, db, insert, "a", "queued")
				for _, bad := range [][]any{{"a", "queued"}, {"b", "running"}} {
					if _, err := db.ExecContext(t.Context(), insert, bad...); err == nil {
						t.Errorf("async_calls accepted %v (duplicate call id or unknown state)", bad)
					}
				}
			},
		},
		{
			version: 6,
			seed: func(t *testing.T, db *sql.DB) {
				exec(t, db, `INSERT INTO functions VALUES ('f', ?, '{"name":"f"}', 2, 'c', 'u')`, digest)
			},
			check: func(t *testing.T, db *sql.DB) {
				if !hasTable(t, db, "mqtt_inbox") || !hasTable(t, db, "mqtt_outbox") {
					t.Fatal("no mqtt_inbox or mqtt_outbox after version 6")
				}
				exec(t, db, `INSERT INTO mqtt_inbox (function_name, filter, reply, ordered, topic, payload, qos, retain, dup, received_ns)
					VALUES ('f', 'a/+', '', 0, 'a/b', x'00', 1, 0, 0, 1)`)
				exec(t, db, `INSERT INTO mqtt_outbox (topic, payload, created_ns) VALUES ('r', x'', 1)`)
				for _, bad := range []string{
					`INSERT INTO mqtt_inbox (function_name, filter, reply, ordered, topic, payload, qos, retain, dup, received_ns)
						VALUES ('f', 'a/+', '', 0, 'a/b', x'00', 2, 0, 0, 1)`,
					`INSERT INTO mqtt_inbox (function_name, filter, reply, ordered, topic, payload, qos, retain, dup, received_ns)
						VALUES ('', 'a/+', '', 0, 'a/b', x'00', 1, 0, 0, 1)`,
					`INSERT INTO mqtt_outbox (topic, payload, created_ns) VALUES ('', x'', 1)`,
				} {
					if _, err := db.ExecContext(t.Context(), bad); err == nil {
						t.Errorf("accepted %s", bad)
					}
				}
			},
		},
		{
			version: 7,
			seed: func(t *testing.T, db *sql.DB) {
				exec(t, db, `INSERT INTO functions VALUES ('f', ?, '{"name":"f"}', 2, 'c', 'u')`, digest)
			},
			check: func(t *testing.T, db *sql.DB) {
				if !hasTable(t, db, "cloud_functions") {
					t.Fatal("no cloud_functions after version 7")
				}
				exec(t, db, `INSERT INTO cloud_functions VALUES ('f', 3, ?)`, digest)
				for _, bad := range []string{`INSERT INTO cloud_functions VALUES ('f', 4, 'd')`,
					`INSERT INTO cloud_functions VALUES ('', 1, 'd')`, `INSERT INTO cloud_functions VALUES ('g', 0, 'd')`} {
					if _, err := db.ExecContext(t.Context(), bad); err == nil {
						t.Errorf("cloud_functions accepted %s", bad)
					}
				}
			},
		},
	}
	if len(tests) != len(mustLoad(t, migrationFiles)) {
		t.Fatalf("%d migration tests for %d migrations: every migration needs one", len(tests), len(mustLoad(t, migrationFiles)))
	}
	for _, tt := range tests {
		t.Run(mustLoad(t, migrationFiles)[tt.version-1].name, func(t *testing.T) {
			db := rawDB(t)
			ctx := t.Context()
			if err := migrate(ctx, db, migrationFiles, tt.version-1); err != nil {
				t.Fatalf("migrate to %d: %v", tt.version-1, err)
			}
			tt.seed(t, db)
			if err := migrate(ctx, db, migrationFiles, tt.version); err != nil {
				t.Fatalf("migrate to %d: %v", tt.version, err)
			}
			if v, err := schemaVersion(ctx, db); err != nil || v != tt.version {
				t.Fatalf("schema version = %d, %v, want %d", v, err, tt.version)
			}
			tt.check(t, db)
		})
	}
}

func TestMigrationFailureKeepsPreviousVersion(t *testing.T) {
	real := mustLoad(t, migrationFiles)
	fsys := fstest.MapFS{}
	for _, m := range real {
		fsys["migrations/"+m.name] = &fstest.MapFile{Data: []byte(m.sql)}
	}
	bad := len(real) + 1
	badName := fmt.Sprintf("migrations/%04d_broken.sql", bad)
	fsys[badName] = &fstest.MapFile{Data: []byte(`
		CREATE TABLE half_done (x INTEGER);
		INSERT INTO functions (name) VALUES ('violates NOT NULL');`)}

	db := rawDB(t)
	ctx := t.Context()
	err := migrate(ctx, db, fsys, -1)
	if err == nil || !strings.Contains(err.Error(), filepath.Base(badName)) {
		t.Fatalf("migrate = %v, want an error naming %s", err, filepath.Base(badName))
	}
	if v, err := schemaVersion(ctx, db); err != nil || v != len(real) {
		t.Errorf("schema version after the failure = %d, %v, want %d", v, err, len(real))
	}
	if hasTable(t, db, "half_done") {
		t.Error("the failed migration's first statement was kept")
	}
	// Fixing the file and migrating again finishes the job.
	fsys[badName] = &fstest.MapFile{Data: []byte(`CREATE TABLE half_done (x INTEGER);`)}
	if err := migrate(ctx, db, fsys, -1); err != nil {
		t.Fatalf("migrate after the fix: %v", err)
	}
	if v, _ := schemaVersion(ctx, db); v != bad || !hasTable(t, db, "half_done") {
		t.Errorf("after the fix: version %d, half_done %v; want %d, true", v, hasTable(t, db, "half_done"), bad)
	}
}

func TestLoadMigrationsRejectsBadSets(t *testing.T) {
	file := &fstest.MapFile{Data: []byte("SELECT 1;")}
	tests := []struct {
		name  string
		files []string
	}{
		{name: "gap", files: []string{"0001_a.sql", "0003_c.sql"}},
		{name: "duplicate", files: []string{"0001_a.sql", "0001_b.sql"}},
		{name: "not starting at 1", files: []string{"0002_b.sql"}},
		{name: "no number", files: []string{"first.sql"}},
		{name: "version 0", files: []string{"0000_zero.sql"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for _, f := range tt.files {
				fsys["migrations/"+f] = file
			}
			if _, err := loadMigrations(fsys); !errors.Is(err, errdefs.ErrInvalid) {
				t.Errorf("loadMigrations(%v) = %v, want ErrInvalid", tt.files, err)
			}
		})
	}
}

func TestEmbeddedMigrationsLoad(t *testing.T) {
	ms := mustLoad(t, migrationFiles)
	if len(ms) < 2 || ms[0].name != "0001_functions.sql" || ms[1].name != "0002_images.sql" {
		t.Errorf("embedded migrations = %v, want 0001_functions.sql, 0002_images.sql, ...", ms)
	}
}
