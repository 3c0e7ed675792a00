package store

import (
	"context"
	"fmt"
)

// CloudFunction is a function the cloud placed: the deployment revision
// applied and its image digest.
type CloudFunction struct {
	Name     string
	Revision int64
	Digest   string
}

// CloudFunctions returns the functions the cloud placed, by name.
func (s *DB) CloudFunctions(ctx context.Context) (map[string]CloudFunction, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, revision, digest FROM cloud_functions`)
	if err != nil {
		return nil, fmt.Errorf("cloud functions: %w", err)
	}
	defer rows.Close()
	out := map[string]CloudFunction{}
	for rows.Next() {
		var f CloudFunction
		if err := rows.Scan(&f.Name, &f.Revision, &f.Digest); err != nil {
			return nil, fmt.Errorf("cloud functions: %w", err)
		}
		out[f.Name] = f
	}
	return out, rows.Err()
}

// PutCloudFunction records that the cloud's revision of a function is
// applied.
func (s *DB) PutCloudFunction(ctx context.Context, f CloudFunction) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO cloud_functions (name, revision, digest) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET revision = excluded.revision, digest = excluded.digest`,
		f.Name, f.Revision, f.Digest)
	if err != nil {
		return fmt.Errorf("cloud function %q: %w", f.Name, err)
	}
	return nil
}

// DeleteCloudFunction forgets that the cloud placed a function.
func (s *DB) DeleteCloudFunction(ctx context.Context, name string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM cloud_functions WHERE name = ?`, name); err != nil {
		return fmt.Errorf("cloud function %q: %w", name, err)
	}
	return nil
}
