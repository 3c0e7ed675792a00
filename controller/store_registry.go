package controller

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/edgefaas/edgefaas/errdefs"
)

// Manifest is an image manifest or index held by the registry, verbatim.
type Manifest struct {
	Repo      string
	Digest    string // sha256:<hex> of Body
	MediaType string
	Body      []byte
	Created   time.Time
}

func (s *SQLStore) PutManifest(ctx context.Context, m Manifest, tag string) error {
	now := s.now().UnixNano()
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO registry_manifests (repo, digest, media_type, body, created_ns)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT (repo, digest) DO NOTHING`,
			m.Repo, m.Digest, m.MediaType, string(m.Body), now); err != nil {
			return err
		}
		if tag == "" {
			return nil
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO registry_tags (repo, tag, digest, updated_ns) VALUES ($1, $2, $3, $4)
			ON CONFLICT (repo, tag) DO UPDATE SET digest = excluded.digest, updated_ns = excluded.updated_ns`,
			m.Repo, tag, m.Digest, now)
		return err
	})
	if err != nil {
		return fmt.Errorf("store manifest %s@%s: %w", m.Repo, m.Digest, err)
	}
	return nil
}

// isDigestRef tells a digest reference from a tag: a tag cannot hold ':'.
func isDigestRef(ref string) bool { return strings.Contains(ref, ":") }

func (s *SQLStore) Manifest(ctx context.Context, repo, ref string) (Manifest, error) {
	m := Manifest{Repo: repo}
	var body string
	var created int64
	q := `SELECT digest, media_type, body, created_ns FROM registry_manifests WHERE repo = $1 AND digest = $2`
	if !isDigestRef(ref) {
		q = `SELECT m.digest, m.media_type, m.body, m.created_ns FROM registry_tags t
			JOIN registry_manifests m ON m.repo = t.repo AND m.digest = t.digest WHERE t.repo = $1 AND t.tag = $2`
	}
	err := s.db.SQL().QueryRowContext(ctx, q, repo, ref).Scan(&m.Digest, &m.MediaType, &body, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return Manifest{}, fmt.Errorf("manifest %s: %w", refString(repo, ref), errdefs.ErrNotFound)
	}
	if err != nil {
		return Manifest{}, fmt.Errorf("manifest %s: %w", refString(repo, ref), err)
	}
	m.Body, m.Created = []byte(body), time.Unix(0, created).UTC()
	return m, nil
}

func (s *SQLStore) Tags(ctx context.Context, repo string) ([]string, error) {
	var exists bool
	if err := s.db.SQL().QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM registry_manifests WHERE repo = $1)`,
		repo).Scan(&exists); err != nil {
		return nil, fmt.Errorf("tags of %s: %w", repo, err)
	}
	if !exists {
		return nil, fmt.Errorf("repository %q: %w", repo, errdefs.ErrNotFound)
	}
	rows, err := s.db.SQL().QueryContext(ctx, `SELECT tag FROM registry_tags WHERE repo = $1 ORDER BY tag`, repo)
	if err != nil {
		return nil, fmt.Errorf("tags of %s: %w", repo, err)
	}
	defer rows.Close()
	tags := []string{}
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, fmt.Errorf("tags of %s: %w", repo, err)
		}
		tags = append(tags, t)
	}
	return tags, rows.Err()
}

func (s *SQLStore) DeleteManifest(ctx context.Context, repo, ref string) error {
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		if !isDigestRef(ref) {
			res, err := tx.ExecContext(ctx, `DELETE FROM registry_tags WHERE repo = $1 AND tag = $2`, repo, ref)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return fmt.Errorf("tag %s: %w", refString(repo, ref), errdefs.ErrNotFound)
			}
			return nil
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM registry_manifests WHERE repo = $1 AND digest = $2`, repo, ref)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("manifest %s: %w", refString(repo, ref), errdefs.ErrNotFound)
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM registry_tags WHERE repo = $1 AND digest = $2`, repo, ref)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	return nil
}

// RegistryIndex lists every manifest and, by "repo@digest", those a tag
// names.
func (s *SQLStore) RegistryIndex(ctx context.Context) ([]Manifest, map[string]bool, error) {
	rows, err := s.db.SQL().QueryContext(ctx, `SELECT repo, digest, media_type, body, created_ns FROM registry_manifests`)
	if err != nil {
		return nil, nil, fmt.Errorf("registry index: %w", err)
	}
	defer rows.Close()
	var ms []Manifest
	for rows.Next() {
		var m Manifest
		var body string
		var created int64
		if err := rows.Scan(&m.Repo, &m.Digest, &m.MediaType, &body, &created); err != nil {
			return nil, nil, fmt.Errorf("registry index: %w", err)
		}
		m.Body, m.Created = []byte(body), time.Unix(0, created).UTC()
		ms = append(ms, m)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	trows, err := s.db.SQL().QueryContext(ctx, `SELECT repo, digest FROM registry_tags`)
	if err != nil {
		return nil, nil, fmt.Errorf("registry index: %w", err)
	}
	defer trows.Close()
	tagged := map[string]bool{}
	for trows.Next() {
		var repo, digest string
		if err := trows.Scan(&repo, &digest); err != nil {
			return nil, nil, fmt.Errorf("registry index: %w", err)
		}
		tagged[repo+"@"+digest] = true
	}
	return ms, tagged, trows.Err()
}

// refString joins a repository and a tag or digest as a reference.
func refString(repo, ref string) string {
	if isDigestRef(ref) {
		return repo + "@" + ref
	}
	return repo + ":" + ref
}
