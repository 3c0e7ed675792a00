-- The controller's fleet store (package controller). Kept portable to
-- PostgreSQL: plain types (TEXT, BIGINT, INTEGER 0/1 for booleans), times as
-- unix nanoseconds, no STRICT, no AUTOINCREMENT, ON CONFLICT DO NOTHING for
-- idempotent inserts.

-- One-time enrolment tokens. Only the token's SHA-256 is stored: a copy of
-- the database does not enrol devices.
CREATE TABLE enroll_tokens (
	token_hash  TEXT PRIMARY KEY NOT NULL,
	labels      TEXT NOT NULL,            -- JSON object
	created_ns  BIGINT NOT NULL,
	used_ns     BIGINT,                   -- NULL until spent
	used_by     TEXT                      -- the device it enrolled
);

CREATE TABLE devices (
	id            TEXT PRIMARY KEY NOT NULL,
	public_key    TEXT NOT NULL,          -- ed25519, hex
	labels        TEXT NOT NULL,          -- JSON object, from the token
	hostname      TEXT NOT NULL,
	enrolled_ns   BIGINT NOT NULL,
	revoked_ns    BIGINT,                 -- NULL unless revoked
	last_seen_ns  BIGINT NOT NULL,        -- 0: never connected
	inventory     TEXT NOT NULL,          -- JSON: the last hello
	health        TEXT NOT NULL           -- JSON: the last health report
);

-- Activation records, once per (device, seq): the agent may send a record
-- again (it was killed before it saw the ack) and the primary key drops it.
CREATE TABLE usage_records (
	device_id      TEXT NOT NULL,
	seq            BIGINT NOT NULL,
	call_id        TEXT NOT NULL,
	function_name  TEXT NOT NULL,
	image_digest   TEXT NOT NULL,
	trigger_kind   TEXT NOT NULL,
	start_ns       BIGINT NOT NULL,
	duration_ns    BIGINT NOT NULL,
	billed_ms      BIGINT NOT NULL,
	memory_bytes   BIGINT NOT NULL,
	kib_ms         BIGINT NOT NULL,
	cpu_ns         BIGINT NOT NULL,
	cold           INTEGER NOT NULL,
	init_ns        BIGINT NOT NULL,
	status         TEXT NOT NULL,
	request_bytes  BIGINT NOT NULL,
	response_bytes BIGINT NOT NULL,
	received_ns    BIGINT NOT NULL,
	PRIMARY KEY (device_id, seq)
);

CREATE INDEX usage_records_start ON usage_records (start_ns);
CREATE INDEX usage_records_function_start ON usage_records (function_name, start_ns);
