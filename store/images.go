package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/edgefaas/edgefaas/api"
	"github.com/edgefaas/edgefaas/errdefs"
)

const (
	digestPrefix = "sha256:"
	digestHexLen = 64
	// minPrefixLen is the shortest digest prefix Image accepts, as docker's
	// short image IDs: shorter ones collide too easily to name one image.
	minPrefixLen = 12
)

// PutImage creates or replaces the record of the image img.Digest. Its
// names become exactly img.Names, each a NAME:TAG reference (a bare NAME is
// stored as NAME:latest); a name another image held moves to this one. A
// zero CreatedAt is stored as now.
func (s *DB) PutImage(ctx context.Context, img api.Image) error {
	if !validDigest(img.Digest) {
		return fmt.Errorf("image %q: want a digest sha256:<64 lowercase hex>: %w", img.Digest, errdefs.ErrInvalid)
	}
	names := make([]string, 0, len(img.Names))
	for _, n := range img.Names {
		nn, err := normalizeName(n)
		if err != nil {
			return fmt.Errorf("image %q: %w", img.Digest, err)
		}
		names = append(names, nn)
	}
	config, err := json.Marshal(img.Config)
	if err != nil {
		return fmt.Errorf("image %q: %w", img.Digest, err)
	}
	if img.CreatedAt.IsZero() {
		img.CreatedAt = s.now()
	}
	err = s.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO images (digest, platform, size, created_at, config)
			VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (digest) DO UPDATE SET platform = excluded.platform, size = excluded.size,
				created_at = excluded.created_at, config = excluded.config`,
			img.Digest, img.Platform, img.Size, formatTime(img.CreatedAt), string(config)); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM image_names WHERE digest = ?", img.Digest); err != nil {
			return err
		}
		for _, n := range names {
			if _, err := tx.ExecContext(ctx, `INSERT INTO image_names (name, digest) VALUES (?, ?)
				ON CONFLICT (name) DO UPDATE SET digest = excluded.digest`, n, img.Digest); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("image %q: %w", img.Digest, err)
	}
	return nil
}

// Image returns the image that ref names: a full digest "sha256:<hex>", a
// digest prefix of at least 12 hex digits (with or without "sha256:"), or
// a name NAME:TAG (a bare NAME means NAME:latest). A prefix that matches
// several images is ErrInvalid; a hex string that matches no digest is
// tried as a name.
func (s *DB) Image(ctx context.Context, ref string) (api.Image, error) {
	digest, err := s.resolve(ctx, ref)
	if err != nil {
		return api.Image{}, fmt.Errorf("image %q: %w", ref, err)
	}
	imgs, err := s.images(ctx, "WHERE digest = ?", digest)
	if err != nil {
		return api.Image{}, fmt.Errorf("image %q: %w", ref, err)
	}
	if len(imgs) == 0 {
		// Deleted between resolve and read.
		return api.Image{}, fmt.Errorf("image %q: %w", ref, errdefs.ErrNotFound)
	}
	return imgs[0], nil
}

// resolve turns a reference into the digest of a stored image.
func (s *DB) resolve(ctx context.Context, ref string) (string, error) {
	if hex, ok := strings.CutPrefix(ref, digestPrefix); ok {
		return s.digestByPrefix(ctx, strings.ToLower(hex))
	}
	if len(ref) >= minPrefixLen && isHex(ref) {
		d, err := s.digestByPrefix(ctx, ref)
		if err == nil || !errors.Is(err, errdefs.ErrNotFound) {
			return d, err
		}
	}
	name, err := normalizeName(ref)
	if err != nil {
		return "", err
	}
	var digest string
	err = s.db.QueryRowContext(ctx, "SELECT digest FROM image_names WHERE name = ?", name).Scan(&digest)
	if notFound(err) {
		return "", errdefs.ErrNotFound
	}
	return digest, err
}

func (s *DB) digestByPrefix(ctx context.Context, hex string) (string, error) {
	if !isHex(hex) || len(hex) < minPrefixLen || len(hex) > digestHexLen {
		return "", fmt.Errorf("want %d to %d hex digits of a sha256 digest: %w", minPrefixLen, digestHexLen, errdefs.ErrInvalid)
	}
	// A range on the primary key, where LIKE would scan: every digest
	// starting with p sorts in [p, p+"~") since '~' follows all hex digits.
	p := digestPrefix + hex
	rows, err := s.db.QueryContext(ctx, "SELECT digest FROM images WHERE digest >= ? AND digest < ? ORDER BY digest LIMIT 2", p, p+"~")
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var found []string
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			return "", err
		}
		found = append(found, d)
	}
	if err := rows.Err(); err != nil {
		return "", err
	}
	switch len(found) {
	case 0:
		return "", errdefs.ErrNotFound
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("ambiguous digest prefix: matches %s, %s and maybe more; give more digits: %w", found[0], found[1], errdefs.ErrInvalid)
}

// Images returns every image, ordered by digest.
func (s *DB) Images(ctx context.Context) ([]api.Image, error) {
	imgs, err := s.images(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("images: %w", err)
	}
	return imgs, nil
}

// DeleteImage removes the record of the image with the full digest and its
// names. It refuses with ErrConflict while functions are deployed with it:
// they would not start again after a restart.
func (s *DB) DeleteImage(ctx context.Context, digest string) error {
	err := s.Tx(ctx, func(tx *sql.Tx) error {
		users, err := functionsUsing(ctx, tx, digest)
		if err != nil {
			return err
		}
		if len(users) > 0 {
			return fmt.Errorf("used by functions %q: %w", users, errdefs.ErrConflict)
		}
		res, err := tx.ExecContext(ctx, "DELETE FROM images WHERE digest = ?", digest)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return errdefs.ErrNotFound
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("image %q: %w", digest, err)
	}
	return nil
}

// images reads the images matching where (a WHERE clause or "") with their
// names, ordered by digest.
func (s *DB) images(ctx context.Context, where string, args ...any) ([]api.Image, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT i.digest, i.platform, i.size, i.created_at, i.config, n.name
		FROM (SELECT * FROM images `+where+`) AS i LEFT JOIN image_names AS n ON n.digest = i.digest
		ORDER BY i.digest, n.name`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var imgs []api.Image
	for rows.Next() {
		var img api.Image
		var created, config string
		var name sql.NullString
		if err := rows.Scan(&img.Digest, &img.Platform, &img.Size, &created, &config, &name); err != nil {
			return nil, err
		}
		if len(imgs) == 0 || imgs[len(imgs)-1].Digest != img.Digest {
			if img.CreatedAt, err = parseTime(created); err != nil {
				return nil, err
			}
			if err := json.Unmarshal([]byte(config), &img.Config); err != nil {
				return nil, fmt.Errorf("bad config of %s in database: %w", img.Digest, err)
			}
			imgs = append(imgs, img)
		}
		if name.Valid {
			last := &imgs[len(imgs)-1]
			last.Names = append(last.Names, name.String)
		}
	}
	return imgs, rows.Err()
}

// normalizeName checks a NAME[:TAG] reference and adds ":latest" when it
// has no tag. A colon before the last slash is a registry port, not a tag.
// NAME@sha256:<hex> (an image pulled by digest) is kept as it is.
func normalizeName(n string) (string, error) {
	if repo, d, ok := strings.Cut(n, "@"); ok {
		if repo == "" || strings.ContainsAny(repo, " \t\r\n@") || !validDigest(d) {
			return "", fmt.Errorf("image name %q: want NAME@sha256:<64 lowercase hex>: %w", n, errdefs.ErrInvalid)
		}
		return n, nil
	}
	if n == "" || strings.ContainsAny(n, " \t\r\n") || strings.HasPrefix(n, digestPrefix) {
		return "", fmt.Errorf("image name %q: want NAME or NAME:TAG: %w", n, errdefs.ErrInvalid)
	}
	if i := strings.LastIndex(n, ":"); i > strings.LastIndex(n, "/") {
		if i == len(n)-1 || i == 0 {
			return "", fmt.Errorf("image name %q: empty name or tag: %w", n, errdefs.ErrInvalid)
		}
		return n, nil
	}
	return n + ":latest", nil
}

func validDigest(d string) bool {
	hex, ok := strings.CutPrefix(d, digestPrefix)
	return ok && len(hex) == digestHexLen && isHex(hex)
}

// isHex reports whether s is lowercase hexadecimal.
func isHex(s string) bool {
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return s != ""
}
