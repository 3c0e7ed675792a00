-- Async calls (POST /async-function/{name}): committed here before the
-- caller gets its 202, run from here, and kept until their result was
-- delivered to the callback URL (or there is none). A call still here after
-- a restart runs again: at-least-once, like every durable queue.
-- state: 'queued' (to invoke) or 'delivering' (result kept, callback due).
CREATE TABLE async_calls (
	seq           INTEGER PRIMARY KEY AUTOINCREMENT,
	call_id       TEXT NOT NULL UNIQUE,
	function_name TEXT NOT NULL CHECK (function_name <> ''),
	method        TEXT NOT NULL,
	path          TEXT NOT NULL,
	query         TEXT NOT NULL,
	header_json   TEXT NOT NULL,
	body          BLOB NOT NULL,
	callback_url  TEXT NOT NULL,
	created_ns    INTEGER NOT NULL,
	state         TEXT NOT NULL CHECK (state IN ('queued', 'delivering')),
	attempts      INTEGER NOT NULL DEFAULT 0,
	next_ns       INTEGER NOT NULL DEFAULT 0,
	result_code   INTEGER NOT NULL DEFAULT 0,
	result_status TEXT NOT NULL DEFAULT '',
	result_header TEXT NOT NULL DEFAULT '{}',
	result_body   BLOB NOT NULL DEFAULT x''
) STRICT;

CREATE INDEX async_calls_due ON async_calls (next_ns, seq);
