package controller

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/edgefaas/edgefaas/cloudsync/proto"
	"github.com/edgefaas/edgefaas/errdefs"
)

// The deployment half of SQLStore (migration 0002; the registry is 0003).

// PutDeployment creates or changes the deployment d.Name with the next
// revision of the store's one counter. It returns it as stored.
func (s *SQLStore) PutDeployment(ctx context.Context, d Deployment) (Deployment, error) {
	sel, err := json.Marshal(nonNil(d.Selector))
	if err != nil {
		return Deployment{}, err
	}
	spec, err := json.Marshal(d.Spec)
	if err != nil {
		return Deployment{}, err
	}
	now := s.now().UTC()
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		// A revision from the one counter: never used twice, so that an
		// agent comparing revisions cannot take a new deployment of an
		// old name for the one it applied.
		if err := tx.QueryRowContext(ctx, `UPDATE deployment_revisions SET last = last + 1 WHERE id = 1
			RETURNING last`).Scan(&d.Revision); err != nil {
			return err
		}
		var created int64
		err := tx.QueryRowContext(ctx, `SELECT created_ns FROM deployments WHERE name = $1`, d.Name).Scan(&created)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			d.CreatedAt = now
			_, err = tx.ExecContext(ctx, `INSERT INTO deployments (name, image, repository, digest, selector, spec,
				revision, created_ns, updated_ns) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
				d.Name, d.Image, d.Repository, d.Digest, string(sel), string(spec), d.Revision, now.UnixNano(), now.UnixNano())
			return err
		case err != nil:
			return err
		}
		d.CreatedAt = time.Unix(0, created).UTC()
		_, err = tx.ExecContext(ctx, `UPDATE deployments SET image = $1, repository = $2, digest = $3, selector = $4,
			spec = $5, revision = $6, updated_ns = $7 WHERE name = $8`,
			d.Image, d.Repository, d.Digest, string(sel), string(spec), d.Revision, now.UnixNano(), d.Name)
		return err
	})
	if err != nil {
		return Deployment{}, fmt.Errorf("store deployment %q: %w", d.Name, err)
	}
	d.UpdatedAt = now
	d.Selector = nonNil(d.Selector)
	return d, nil
}

const deploymentColumns = `name, image, repository, digest, selector, spec, revision, created_ns, updated_ns`

func scanDeployment(row interface{ Scan(...any) error }) (Deployment, error) {
	var d Deployment
	var sel, spec string
	var created, updated int64
	if err := row.Scan(&d.Name, &d.Image, &d.Repository, &d.Digest, &sel, &spec, &d.Revision, &created, &updated); err != nil {
		return Deployment{}, err
	}
	if err := json.Unmarshal([]byte(sel), &d.Selector); err != nil {
		return Deployment{}, fmt.Errorf("deployment %q: selector: %w", d.Name, err)
	}
	if err := json.Unmarshal([]byte(spec), &d.Spec); err != nil {
		return Deployment{}, fmt.Errorf("deployment %q: spec: %w", d.Name, err)
	}
	d.CreatedAt, d.UpdatedAt = time.Unix(0, created).UTC(), time.Unix(0, updated).UTC()
	return d, nil
}

func (s *SQLStore) Deployment(ctx context.Context, name string) (Deployment, error) {
	d, err := scanDeployment(s.db.SQL().QueryRowContext(ctx,
		`SELECT `+deploymentColumns+` FROM deployments WHERE name = $1`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return Deployment{}, fmt.Errorf("deployment %q: %w", name, errdefs.ErrNotFound)
	}
	return d, err
}

func (s *SQLStore) Deployments(ctx context.Context) ([]Deployment, error) {
	rows, err := s.db.SQL().QueryContext(ctx, `SELECT `+deploymentColumns+` FROM deployments ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("deployments: %w", err)
	}
	defer rows.Close()
	var out []Deployment
	for rows.Next() {
		d, err := scanDeployment(rows)
		if err != nil {
			return nil, fmt.Errorf("deployments: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

func (s *SQLStore) DeleteDeployment(ctx context.Context, name string) error {
	res, err := s.db.SQL().ExecContext(ctx, `DELETE FROM deployments WHERE name = $1`, name)
	if err != nil {
		return fmt.Errorf("delete deployment %q: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("deployment %q: %w", name, errdefs.ErrNotFound)
	}
	return nil
}

// PutStatus replaces what the device reported before with st: the agent
// sends its whole picture each time. Functions reported "removed" are
// dropped.
func (s *SQLStore) PutStatus(ctx context.Context, device string, st []proto.FunctionStatus) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	now := s.now().UnixNano()
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM device_functions WHERE device_id = $1`, device); err != nil {
			return err
		}
		for _, f := range st {
			if f.State == proto.StateRemoved {
				continue
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO device_functions (device_id, function_name, revision, state,
				reason, serving, digest, at_ns, updated_ns) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
				device, f.Name, f.Revision, f.State, f.Reason, f.Serving, f.Digest, f.AtMs*int64(time.Millisecond), now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("device %q status: %w", device, err)
	}
	return nil
}

// DeviceFunctions lists the reports of one device (device != "") or of
// one function on every device (function != "").
func (s *SQLStore) DeviceFunctions(ctx context.Context, device, function string) ([]DeviceFunction, error) {
	rows, err := s.db.SQL().QueryContext(ctx, `SELECT device_id, function_name, revision, state, reason, serving,
		digest, at_ns, updated_ns FROM device_functions
		WHERE ($1 = '' OR device_id = $2) AND ($3 = '' OR function_name = $4) ORDER BY device_id, function_name`,
		device, device, function, function)
	if err != nil {
		return nil, fmt.Errorf("device functions: %w", err)
	}
	defer rows.Close()
	var out []DeviceFunction
	for rows.Next() {
		var f DeviceFunction
		var at, updated int64
		if err := rows.Scan(&f.Device, &f.Name, &f.Revision, &f.State, &f.Reason, &f.Serving, &f.Digest,
			&at, &updated); err != nil {
			return nil, fmt.Errorf("device functions: %w", err)
		}
		f.AtMs = at / int64(time.Millisecond)
		f.UpdatedAt = time.Unix(0, updated).UTC()
		out = append(out, f)
	}
	return out, rows.Err()
}

// UsageSeries sums the records matching q per function and time bucket of
// the given width, oldest first. Integer division of BIGINTs buckets the
// same way in SQLite and PostgreSQL.
func (s *SQLStore) UsageSeries(ctx context.Context, q UsageQuery, bucket time.Duration) ([]UsageBucket, error) {
	if bucket < time.Second {
		return nil, fmt.Errorf("usage series: bucket %s, want at least 1s: %w", bucket, errdefs.ErrInvalid)
	}
	var since int64
	if !q.Since.IsZero() {
		since = q.Since.UnixNano()
	}
	w := int64(bucket)
	rows, err := s.db.SQL().QueryContext(ctx, `SELECT (start_ns / $1) * $2 AS b, function_name, COUNT(*),
		SUM(CASE WHEN status = 'ok' THEN 0 ELSE 1 END), SUM(kib_ms)
		FROM usage_records
		WHERE start_ns >= $3 AND ($4 = '' OR device_id = $5) AND ($6 = '' OR function_name = $7)
		GROUP BY b, function_name ORDER BY b, function_name`,
		w, w, since, q.Device, q.Device, q.Function, q.Function)
	if err != nil {
		return nil, fmt.Errorf("usage series: %w", err)
	}
	defer rows.Close()
	var out []UsageBucket
	for rows.Next() {
		var u UsageBucket
		var start, kibMs int64
		if err := rows.Scan(&start, &u.Function, &u.Invocations, &u.Errors, &kibMs); err != nil {
			return nil, fmt.Errorf("usage series: %w", err)
		}
		u.Start = time.Unix(0, start).UTC()
		u.GBSeconds = float64(kibMs) / (1024 * 1024) / 1000
		out = append(out, u)
	}
	return out, rows.Err()
}
