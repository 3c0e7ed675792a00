package controller

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/edgefaas/edgefaas/cloudsync/proto"
	"github.com/edgefaas/edgefaas/errdefs"
	"github.com/edgefaas/edgefaas/store"
)

// Store is what the controller keeps: tokens, devices and usage. SQLite
// (SQLStore) is the embedded default; the SQL is kept portable so that a
// PostgreSQL store for several replicas can implement the same interface.
type Store interface {
	CreateToken(ctx context.Context, token string, labels map[string]string) error
	// Enroll spends token for d: ErrNotFound for an unknown token,
	// ErrConflict for one already spent, ErrExists for a known key.
	Enroll(ctx context.Context, token string, d Device) (Device, error)
	Device(ctx context.Context, id string) (Device, error)
	Devices(ctx context.Context) ([]Device, error)
	Revoke(ctx context.Context, id string) error
	// Seen records that the device was heard from, with its inventory or
	// health when not nil.
	Seen(ctx context.Context, id string, hello *proto.Hello, health *proto.Health) error
	// PutUsage stores the records not stored yet, in one transaction made
	// durable before it returns, and says for each batch how many were new
	// and how many clashed with a stored record of the same seq but another
	// call id (the others were stored before, as sent).
	PutUsage(ctx context.Context, batches []UsageBatch) ([]PutResult, error)
	Usage(ctx context.Context, q UsageQuery) ([]UsageRow, error)
	UsageSeries(ctx context.Context, q UsageQuery, bucket time.Duration) ([]UsageBucket, error)

	// Deployments (deploystore.go). PutDeployment sets the revision.
	PutDeployment(ctx context.Context, d Deployment) (Deployment, error)
	Deployment(ctx context.Context, name string) (Deployment, error)
	Deployments(ctx context.Context) ([]Deployment, error)
	DeleteDeployment(ctx context.Context, name string) error
	// PutStatus replaces a device's function reports.
	PutStatus(ctx context.Context, device string, st []proto.FunctionStatus) error
	DeviceFunctions(ctx context.Context, device, function string) ([]DeviceFunction, error)

	// PutManifest stores m (kept if its digest is held already) and, when
	// tag is not empty, points the tag at it, in one transaction.
	PutManifest(ctx context.Context, m Manifest, tag string) error
	// Manifest finds a manifest of repo by tag or digest: ErrNotFound.
	Manifest(ctx context.Context, repo, ref string) (Manifest, error)
	// Tags lists repo's tags in order: ErrNotFound for a repository
	// holding no manifest.
	Tags(ctx context.Context, repo string) ([]string, error)
	// DeleteManifest removes a tag, or a manifest (by digest) and the
	// tags naming it: ErrNotFound when there is no such one.
	DeleteManifest(ctx context.Context, repo, ref string) error
	// RegistryIndex lists every manifest, and which a tag names (by
	// "repo@digest"), for the registry's collection.
	RegistryIndex(ctx context.Context) ([]Manifest, map[string]bool, error)
	Close() error
}

//go:embed migrations/*.sql
var migrations embed.FS

// SQLStore is the Store in a SQLite file.
type SQLStore struct {
	db  *store.DB
	now func() time.Time
	// wmu orders the writes that every link makes (Seen, PutStatus,
	// PutUsage). SQLite has one writer; left to its busy handler,
	// thousands of links waiting for the lock sleep in growing steps (up
	// to 100 ms each) and throughput collapses: a rollout to 10,000
	// simulated devices did not finish its status writes in 5 minutes
	// without it. Waiting on a Go mutex costs nothing of the kind.
	wmu sync.Mutex
}

// OpenStore opens (creating or migrating) dir/edgecloud.db.
func OpenStore(ctx context.Context, dir string) (*SQLStore, error) {
	db, err := store.OpenWith(ctx, filepath.Join(dir, "edgecloud.db"), migrations)
	if err != nil {
		return nil, err
	}
	return &SQLStore{db: db, now: time.Now}, nil
}

// Close closes the database.
func (s *SQLStore) Close() error { return s.db.Close() }

// hashToken is what the database keeps of a token.
func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func (s *SQLStore) CreateToken(ctx context.Context, token string, labels map[string]string) error {
	lb, err := json.Marshal(nonNil(labels))
	if err != nil {
		return err
	}
	_, err = s.db.SQL().ExecContext(ctx,
		`INSERT INTO enroll_tokens (token_hash, labels, created_ns) VALUES ($1, $2, $3)`,
		hashToken(token), string(lb), s.now().UnixNano())
	if err != nil {
		return fmt.Errorf("store token: %w", err)
	}
	return nil
}

func (s *SQLStore) Enroll(ctx context.Context, token string, d Device) (Device, error) {
	now := s.now()
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		var labels string
		var used sql.NullInt64
		err := tx.QueryRowContext(ctx, `SELECT labels, used_ns FROM enroll_tokens WHERE token_hash = $1`,
			hashToken(token)).Scan(&labels, &used)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("enrolment token: %w", errdefs.ErrNotFound)
		case err != nil:
			return err
		case used.Valid:
			return fmt.Errorf("enrolment token already used: %w", errdefs.ErrConflict)
		}
		if err := json.Unmarshal([]byte(labels), &d.Labels); err != nil {
			return fmt.Errorf("token labels: %w", err)
		}
		var exists bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM devices WHERE id = $1)`, d.ID).Scan(&exists); err != nil {
			return err
		}
		if exists {
			return fmt.Errorf("device %q: %w", d.ID, errdefs.ErrExists)
		}
		d.EnrolledAt = now
		if _, err := tx.ExecContext(ctx, `INSERT INTO devices (id, public_key, labels, hostname, enrolled_ns,
			last_seen_ns, inventory, health) VALUES ($1, $2, $3, $4, $5, 0, '{}', '{}')`,
			d.ID, hex.EncodeToString(d.PublicKey), labels, d.Hostname, now.UnixNano()); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE enroll_tokens SET used_ns = $1, used_by = $2 WHERE token_hash = $3`,
			now.UnixNano(), d.ID, hashToken(token))
		return err
	})
	if err != nil {
		return Device{}, fmt.Errorf("enrol: %w", err)
	}
	return d, nil
}

const deviceColumns = `id, public_key, labels, hostname, enrolled_ns, revoked_ns, last_seen_ns, inventory, health`

func scanDevice(row interface{ Scan(...any) error }) (Device, error) {
	var d Device
	var key, labels, inv, health string
	var enrolled, seen int64
	var revoked sql.NullInt64
	if err := row.Scan(&d.ID, &key, &labels, &d.Hostname, &enrolled, &revoked, &seen, &inv, &health); err != nil {
		return Device{}, err
	}
	var err error
	if d.PublicKey, err = hex.DecodeString(key); err != nil {
		return Device{}, fmt.Errorf("device %q: bad key in database: %w", d.ID, err)
	}
	d.EnrolledAt = time.Unix(0, enrolled).UTC()
	if revoked.Valid {
		t := time.Unix(0, revoked.Int64).UTC()
		d.RevokedAt = &t
	}
	if seen > 0 {
		d.LastSeen = time.Unix(0, seen).UTC()
	}
	if err := json.Unmarshal([]byte(labels), &d.Labels); err != nil {
		return Device{}, err
	}
	if inv != "{}" {
		d.Inventory = new(proto.Hello)
		if err := json.Unmarshal([]byte(inv), d.Inventory); err != nil {
			return Device{}, err
		}
	}
	if health != "{}" {
		d.Health = new(proto.Health)
		if err := json.Unmarshal([]byte(health), d.Health); err != nil {
			return Device{}, err
		}
	}
	return d, nil
}

func (s *SQLStore) Device(ctx context.Context, id string) (Device, error) {
	d, err := scanDevice(s.db.SQL().QueryRowContext(ctx, `SELECT `+deviceColumns+` FROM devices WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Device{}, fmt.Errorf("device %q: %w", id, errdefs.ErrNotFound)
	}
	if err != nil {
		return Device{}, fmt.Errorf("device %q: %w", id, err)
	}
	return d, nil
}

func (s *SQLStore) Devices(ctx context.Context) ([]Device, error) {
	rows, err := s.db.SQL().QueryContext(ctx, `SELECT `+deviceColumns+` FROM devices ORDER BY enrolled_ns, id`)
	if err != nil {
		return nil, fmt.Errorf("devices: %w", err)
	}
	defer rows.Close()
	var out []Device
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, fmt.Errorf("devices: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

func (s *SQLStore) Revoke(ctx context.Context, id string) error {
	res, err := s.db.SQL().ExecContext(ctx, `UPDATE devices SET revoked_ns = COALESCE(revoked_ns, $1) WHERE id = $2`,
		s.now().UnixNano(), id)
	if err != nil {
		return fmt.Errorf("revoke %q: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("device %q: %w", id, errdefs.ErrNotFound)
	}
	return nil
}

func (s *SQLStore) Seen(ctx context.Context, id string, hello *proto.Hello, health *proto.Health) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	now := s.now().UnixNano()
	var err error
	switch {
	case hello != nil:
		var b []byte
		if b, err = json.Marshal(hello); err == nil {
			_, err = s.db.SQL().ExecContext(ctx, `UPDATE devices SET last_seen_ns = $1, inventory = $2 WHERE id = $3`, now, string(b), id)
		}
	case health != nil:
		var b []byte
		if b, err = json.Marshal(health); err == nil {
			_, err = s.db.SQL().ExecContext(ctx, `UPDATE devices SET last_seen_ns = $1, health = $2 WHERE id = $3`, now, string(b), id)
		}
	default:
		_, err = s.db.SQL().ExecContext(ctx, `UPDATE devices SET last_seen_ns = $1 WHERE id = $2`, now, id)
	}
	if err != nil {
		return fmt.Errorf("device %q seen: %w", id, err)
	}
	return nil
}

// PutResult is what PutUsage did with one batch.
type PutResult struct {
	Stored int // new records
	// Conflicts are records whose (device, seq) was stored with another
	// call id: the device's ledger was reset under a kept identity. The
	// first record stays; the conflict is counted and logged, never billed
	// twice nor silently.
	Conflicts int
}

func (s *SQLStore) PutUsage(ctx context.Context, batches []UsageBatch) ([]PutResult, error) {
	now := s.now().UnixNano()
	stored := make([]PutResult, len(batches))
	s.wmu.Lock() // not held over the fsync below: other writes may go on
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO usage_records (device_id, seq, call_id, function_name,
			image_digest, trigger_kind, start_ns, duration_ns, billed_ms, memory_bytes, kib_ms, cpu_ns, cold,
			init_ns, status, request_bytes, response_bytes, received_ns)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
			ON CONFLICT (device_id, seq) DO NOTHING`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for i, b := range batches {
			for _, r := range b.Records {
				cold := 0
				if r.Cold {
					cold = 1
				}
				res, err := stmt.ExecContext(ctx, b.Device, r.Seq, r.CallID, r.Function, r.ImageDigest, r.Trigger,
					r.StartNs, r.DurationNs, r.BilledMs, r.MemoryBytes, r.KiBMs, r.CPUNs, cold, r.InitNs, r.Status,
					r.RequestBytes, r.ResponseBytes, now)
				if err != nil {
					return err
				}
				if n, _ := res.RowsAffected(); n > 0 {
					stored[i].Stored++
					continue
				}
				var callID string
				if err := tx.QueryRowContext(ctx, `SELECT call_id FROM usage_records WHERE device_id = $1 AND seq = $2`,
					b.Device, r.Seq).Scan(&callID); err != nil {
					return err
				}
				if callID != r.CallID {
					stored[i].Conflicts++
				}
			}
		}
		return nil
	})
	s.wmu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("store usage: %w", err)
	}
	// synchronous=NORMAL leaves the commit in the page cache; the agent
	// forgets its records once acknowledged, so they must be on disk first.
	if err := s.db.SyncWAL(); err != nil {
		return nil, fmt.Errorf("store usage: %w", err)
	}
	return stored, nil
}

// Usage sums the records matching q per device and function.
func (s *SQLStore) Usage(ctx context.Context, q UsageQuery) ([]UsageRow, error) {
	// Optional filters as "($n = '' OR col = $n)" keep one portable
	// statement with positional parameters in order.
	var since int64
	if !q.Since.IsZero() {
		since = q.Since.UnixNano()
	}
	rows, err := s.db.SQL().QueryContext(ctx, `SELECT device_id, function_name, COUNT(*),
		SUM(CASE WHEN status = 'ok' THEN 0 ELSE 1 END), SUM(cold), SUM(billed_ms), SUM(kib_ms), SUM(cpu_ns),
		MIN(start_ns), MAX(start_ns)
		FROM usage_records
		WHERE start_ns >= $1 AND ($2 = '' OR device_id = $3) AND ($4 = '' OR function_name = $5)
		GROUP BY device_id, function_name ORDER BY device_id, function_name`,
		since, q.Device, q.Device, q.Function, q.Function)
	if err != nil {
		return nil, fmt.Errorf("usage: %w", err)
	}
	defer rows.Close()
	var out []UsageRow
	for rows.Next() {
		var u UsageRow
		var kibMs, cpuNs, first, last int64
		if err := rows.Scan(&u.Device, &u.Function, &u.Invocations, &u.Errors, &u.ColdStarts, &u.BilledMs,
			&kibMs, &cpuNs, &first, &last); err != nil {
			return nil, fmt.Errorf("usage: %w", err)
		}
		u.GBSeconds = float64(kibMs) / (1024 * 1024) / 1000
		u.CPUSeconds = float64(cpuNs) / 1e9
		u.First, u.Last = time.Unix(0, first).UTC(), time.Unix(0, last).UTC()
		out = append(out, u)
	}
	return out, rows.Err()
}

// UsageRecords counts the records held for a device and the distinct call
// ids among them: tests check the two agree (nothing counted twice).
func (s *SQLStore) UsageRecords(ctx context.Context, deviceID string) (records, callIDs, maxSeq int64, err error) {
	err = s.db.SQL().QueryRowContext(ctx, `SELECT COUNT(*), COUNT(DISTINCT call_id), COALESCE(MAX(seq), 0)
		FROM usage_records WHERE device_id = $1`, deviceID).Scan(&records, &callIDs, &maxSeq)
	return records, callIDs, maxSeq, err
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
