-- The function registry: one row per deployed function name.
-- spec is the api.FunctionSpec as JSON; times are RFC 3339 UTC with
-- nanoseconds, so they sort as text.
CREATE TABLE functions (
	name         TEXT PRIMARY KEY NOT NULL,
	image_digest TEXT NOT NULL DEFAULT '',
	spec         TEXT NOT NULL CHECK (json_valid(spec)),
	version      INTEGER NOT NULL CHECK (version > 0),
	created_at   TEXT NOT NULL,
	updated_at   TEXT NOT NULL
) STRICT;

-- FunctionsUsingImage looks functions up by digest.
CREATE INDEX functions_image_digest ON functions (image_digest);
