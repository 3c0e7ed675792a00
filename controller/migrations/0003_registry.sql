-- The controller's OCI registry (controller/registry.go): manifests and
-- tags. Blobs are files under DATA-DIR/registry/blobs, named by digest.
-- Portable as 0001: TEXT, BIGINT, unix nanoseconds.

-- Manifests as pushed: the digest names these exact bytes, so the body is
-- kept verbatim. It is JSON, checked to be UTF-8, so TEXT holds it in
-- PostgreSQL too.
CREATE TABLE registry_manifests (
	repo        TEXT NOT NULL,
	digest      TEXT NOT NULL,            -- sha256:<hex> of body
	media_type  TEXT NOT NULL,
	body        TEXT NOT NULL,
	created_ns  BIGINT NOT NULL,
	PRIMARY KEY (repo, digest)
);

-- A tag names one manifest of its repository; pushing the tag again moves it.
CREATE TABLE registry_tags (
	repo        TEXT NOT NULL,
	tag         TEXT NOT NULL,
	digest      TEXT NOT NULL,
	updated_ns  BIGINT NOT NULL,
	PRIMARY KEY (repo, tag)
);

CREATE INDEX registry_tags_digest ON registry_tags (repo, digest);
