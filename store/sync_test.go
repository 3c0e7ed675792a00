package store

import (
	"os"
	"path/filepath"
	"testing"
)

func TestSyncWAL(t *testing.T) {
	tests := []struct {
		name    string
		db      func(t *testing.T) *DB
		wantErr bool
	}{
		{
			name: "after a write",
			db: func(t *testing.T) *DB {
				db, path := openTest(t)
				if _, err := db.SQL().ExecContext(t.Context(), "CREATE TABLE t (x INTEGER)"); err != nil {
					t.Fatal(err)
				}
				if fi, err := os.Stat(path + "-wal"); err != nil || fi.Size() == 0 {
					t.Fatalf("WAL after a write: %v, %v; want a non-empty file", fi, err)
				}
				return db
			},
		},
		{
			name: "no WAL",
			db: func(t *testing.T) *DB {
				db, path := openTest(t)
				// The last connection to close checkpoints and removes the WAL.
				if err := db.Close(); err != nil {
					t.Fatal(err)
				}
				if _, err := os.Stat(path + "-wal"); !os.IsNotExist(err) {
					t.Fatalf("WAL after Close: %v, want it gone", err)
				}
				return db
			},
		},
		{
			name: "WAL unreachable",
			db: func(t *testing.T) *DB {
				file := filepath.Join(t.TempDir(), "file")
				if err := os.WriteFile(file, nil, 0o600); err != nil {
					t.Fatal(err)
				}
				// A path under a regular file: ENOTDIR, not "missing".
				return &DB{path: filepath.Join(file, "x.db")}
			},
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.db(t).SyncWAL()
			if (err != nil) != tt.wantErr {
				t.Errorf("SyncWAL = %v, want error: %v", err, tt.wantErr)
			}
		})
	}
}
