-- Imported images. The blobs live on disk (package images); this is the
-- metadata. config is the api.ImageConfig as JSON.
CREATE TABLE images (
	digest     TEXT PRIMARY KEY NOT NULL CHECK (digest GLOB 'sha256:*'),
	platform   TEXT NOT NULL,
	size       INTEGER NOT NULL,
	created_at TEXT NOT NULL,
	config     TEXT NOT NULL CHECK (json_valid(config))
) STRICT;

-- A NAME:TAG reference points at exactly one image; the primary key makes
-- a name move rather than fork when another digest claims it.
CREATE TABLE image_names (
	name   TEXT PRIMARY KEY NOT NULL,
	digest TEXT NOT NULL REFERENCES images (digest) ON DELETE CASCADE
) STRICT;

CREATE INDEX image_names_digest ON image_names (digest);
