-- Metering (package metering): one activation record per invocation, kept
-- raw for the retention period, then summed per function and hour.
-- Times are unix nanoseconds (UTC) and durations nanoseconds, as integers:
-- hour and day buckets are integer arithmetic, portable to PostgreSQL.
--
-- seq is AUTOINCREMENT, not a plain rowid: a plain rowid reuses the
-- highest seq once its row is deleted (rolled up), and the controller
-- counts a seq once, so a reused one would go unbilled.
-- billed_ms and kib_ms are fixed when the record is written: a later change
-- of the billing rule does not rewrite the past.
CREATE TABLE metering_records (
	seq            INTEGER PRIMARY KEY AUTOINCREMENT,
	call_id        TEXT NOT NULL,
	function_name  TEXT NOT NULL CHECK (function_name <> ''),
	image_digest   TEXT NOT NULL,
	trigger_kind   TEXT NOT NULL,
	start_ns       INTEGER NOT NULL CHECK (start_ns >= 0),
	duration_ns    INTEGER NOT NULL CHECK (duration_ns >= 0),
	memory_bytes   INTEGER NOT NULL CHECK (memory_bytes >= 0),
	cpu_ns         INTEGER NOT NULL CHECK (cpu_ns >= 0),
	cold           INTEGER NOT NULL CHECK (cold IN (0, 1)),
	init_ns        INTEGER NOT NULL CHECK (init_ns >= 0),
	status         TEXT NOT NULL CHECK (status <> ''),
	request_bytes  INTEGER NOT NULL CHECK (request_bytes >= 0),
	response_bytes INTEGER NOT NULL CHECK (response_bytes >= 0),
	billed_ms      INTEGER NOT NULL CHECK (billed_ms >= 100),
	kib_ms         INTEGER NOT NULL CHECK (kib_ms >= 0)
) STRICT;

-- Rollup and usage since a time scan by start; usage of one function by
-- function and start.
CREATE INDEX metering_records_start ON metering_records (start_ns);
CREATE INDEX metering_records_function_start ON metering_records (function_name, start_ns);

-- Acknowledged raw records past the retention, summed per function and
-- UTC hour (hour_ns is the hour's start). Sums of durations are kept in
-- nanoseconds so that totals do not depend on when rows were rolled up.
CREATE TABLE metering_hourly (
	function_name  TEXT NOT NULL,
	hour_ns        INTEGER NOT NULL,
	invocations    INTEGER NOT NULL,
	errors         INTEGER NOT NULL,
	cold_starts    INTEGER NOT NULL,
	billed_ms      INTEGER NOT NULL,
	kib_ms         INTEGER NOT NULL,
	cpu_ns         INTEGER NOT NULL,
	duration_ns    INTEGER NOT NULL,
	init_ns        INTEGER NOT NULL,
	request_bytes  INTEGER NOT NULL,
	response_bytes INTEGER NOT NULL,
	PRIMARY KEY (function_name, hour_ns)
) STRICT;

-- The highest seq the cloud controller acknowledged: one row, only grows.
CREATE TABLE metering_ack (
	id        INTEGER PRIMARY KEY CHECK (id = 1),
	acked_seq INTEGER NOT NULL CHECK (acked_seq >= 0)
) STRICT;
INSERT INTO metering_ack (id, acked_seq) VALUES (1, 0);
