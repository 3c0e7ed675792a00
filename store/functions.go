package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/edgefaas/edgefaas/api"
	"github.com/edgefaas/edgefaas/errdefs"
)

const functionColumns = "spec, image_digest, version, created_at, updated_at"

// PutFunction creates or replaces the function named f.Spec.Name and
// returns what it stored: Version is 1 on the first deploy and one more on
// each later one, CreatedAt is kept from the first deploy, UpdatedAt is now.
// The spec is stored as given; defaults are the caller's business.
func (s *DB) PutFunction(ctx context.Context, f api.Function) (api.Function, error) {
	name := f.Spec.Name
	if name == "" {
		return api.Function{}, fmt.Errorf("function: empty name: %w", errdefs.ErrInvalid)
	}
	spec, err := json.Marshal(f.Spec)
	if err != nil {
		return api.Function{}, fmt.Errorf("function %q: %w", name, err)
	}
	now := s.now().UTC().Round(0)
	err = s.Tx(ctx, func(tx *sql.Tx) error {
		// Tx holds the write lock from BEGIN, so concurrent deploys of one
		// name read and bump the version one after the other.
		var created string
		err := tx.QueryRowContext(ctx, "SELECT version, created_at FROM functions WHERE name = ?", name).
			Scan(&f.Version, &created)
		switch {
		case notFound(err):
			f.Version, f.CreatedAt = 1, now
		case err != nil:
			return err
		default:
			f.Version++
			if f.CreatedAt, err = parseTime(created); err != nil {
				return err
			}
		}
		f.UpdatedAt = now
		_, err = tx.ExecContext(ctx, `INSERT INTO functions (name, `+functionColumns+`)
			VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, image_digest = excluded.image_digest,
				version = excluded.version, updated_at = excluded.updated_at`,
			name, string(spec), f.ImageDigest, f.Version, formatTime(f.CreatedAt), formatTime(f.UpdatedAt))
		return err
	})
	if err != nil {
		return api.Function{}, fmt.Errorf("function %q: %w", name, err)
	}
	f.Instances = 0
	return f, nil
}

// Function returns the function called name.
func (s *DB) Function(ctx context.Context, name string) (api.Function, error) {
	row := s.db.QueryRowContext(ctx, "SELECT "+functionColumns+" FROM functions WHERE name = ?", name)
	f, err := scanFunction(row)
	if notFound(err) {
		return api.Function{}, fmt.Errorf("function %q: %w", name, errdefs.ErrNotFound)
	}
	if err != nil {
		return api.Function{}, fmt.Errorf("function %q: %w", name, err)
	}
	return f, nil
}

// Functions returns every function, ordered by name.
func (s *DB) Functions(ctx context.Context) ([]api.Function, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT "+functionColumns+" FROM functions ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("functions: %w", err)
	}
	defer rows.Close()
	var fs []api.Function
	for rows.Next() {
		f, err := scanFunction(rows)
		if err != nil {
			return nil, fmt.Errorf("functions: %w", err)
		}
		fs = append(fs, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("functions: %w", err)
	}
	return fs, nil
}

// DeleteFunction removes the function called name.
func (s *DB) DeleteFunction(ctx context.Context, name string) error {
	res, err := s.db.ExecContext(ctx, "DELETE FROM functions WHERE name = ?", name)
	if err != nil {
		return fmt.Errorf("function %q: %w", name, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("function %q: %w", name, errdefs.ErrNotFound)
	}
	return nil
}

// FunctionsUsingImage returns, ordered, the names of the functions deployed
// with the image digest.
func (s *DB) FunctionsUsingImage(ctx context.Context, digest string) ([]string, error) {
	names, err := functionsUsing(ctx, s.db, digest)
	if err != nil {
		return nil, fmt.Errorf("image %q: %w", digest, err)
	}
	return names, nil
}

// querier is what *sql.DB and *sql.Tx have in common.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func functionsUsing(ctx context.Context, q querier, digest string) ([]string, error) {
	rows, err := q.QueryContext(ctx, "SELECT name FROM functions WHERE image_digest = ? ORDER BY name", digest)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		names = append(names, n)
	}
	return names, rows.Err()
}

func scanFunction(row interface{ Scan(...any) error }) (api.Function, error) {
	var f api.Function
	var spec, created, updated string
	if err := row.Scan(&spec, &f.ImageDigest, &f.Version, &created, &updated); err != nil {
		return api.Function{}, err
	}
	if err := json.Unmarshal([]byte(spec), &f.Spec); err != nil {
		return api.Function{}, fmt.Errorf("bad spec in database: %w", err)
	}
	var err error
	if f.CreatedAt, err = parseTime(created); err != nil {
		return api.Function{}, err
	}
	if f.UpdatedAt, err = parseTime(updated); err != nil {
		return api.Function{}, err
	}
	return f, nil
}
