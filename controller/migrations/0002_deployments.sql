-- Deployments and what devices report of them (issue 8). Portable to
-- PostgreSQL, as 0001.

-- One deployment per function name: the function spec, the image pinned
-- to a digest when it was deployed, and the device labels it selects.
-- revision is taken from deployment_revisions at every change, so a
-- revision is never used twice, even by a deployment deleted and made
-- again under its name; agents echo it in their status and compare it with
-- the one they applied.
CREATE TABLE deployments (
	name        TEXT PRIMARY KEY NOT NULL,
	image       TEXT NOT NULL,   -- as the user gave it: repo:tag or repo@digest
	repository  TEXT NOT NULL,   -- in the controller's registry
	digest      TEXT NOT NULL,   -- the manifest's
	selector    TEXT NOT NULL,   -- JSON object: labels a device must all have
	spec        TEXT NOT NULL,   -- JSON: api.FunctionSpec
	revision    BIGINT NOT NULL,
	created_ns  BIGINT NOT NULL,
	updated_ns  BIGINT NOT NULL
);

-- The last revision handed out (one row).
CREATE TABLE deployment_revisions (
	id   INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
	last BIGINT NOT NULL
);
INSERT INTO deployment_revisions (id, last) VALUES (1, 0);

-- The last state each device reported for each function the cloud placed
-- on it: the agent sends its whole picture, which replaces the device's rows.
CREATE TABLE device_functions (
	device_id     TEXT NOT NULL,
	function_name TEXT NOT NULL,
	revision      BIGINT NOT NULL,  -- the desired revision the state is about
	state         TEXT NOT NULL,
	reason        TEXT NOT NULL,
	serving       BIGINT NOT NULL,  -- the revision answering calls (0: none)
	digest        TEXT NOT NULL,
	at_ns         BIGINT NOT NULL,  -- when the device reached the state
	updated_ns    BIGINT NOT NULL,  -- when the controller heard it
	PRIMARY KEY (device_id, function_name)
);

CREATE INDEX device_functions_function ON device_functions (function_name);
