package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// SyncWAL flushes the database's write-ahead log to stable storage.
//
// With synchronous=NORMAL a commit is in the WAL (the kernel's page cache)
// and survives the agent being killed, but not a power loss; callers that
// batch their durability (metering's group commit) call this every so often
// instead of paying an fsync per commit. A missing WAL (no connection open,
// or everything checkpointed and removed) leaves nothing to do.
func (s *DB) SyncWAL() error {
	// fsync flushes the file, not the descriptor: a read-only one reaches
	// the pages SQLite's connections wrote.
	f, err := os.Open(s.path + "-wal")
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: sync wal: %w", err)
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("store: sync wal: %w", err)
	}
	return nil
}
