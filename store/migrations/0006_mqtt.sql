-- MQTT triggers (package mqtt): the durable inbox and outbox.
--
-- mqtt_inbox holds one row per message and matching binding, committed
-- (and the WAL fsynced) before a QoS 1 message is acknowledged; the row is
-- deleted once the invocation succeeded (with its reply, if any, inserted
-- into mqtt_outbox in the same transaction) or was dead-lettered. filter,
-- reply and ordered are the binding's at the time the message arrived, so
-- a redeploy does not change what an accepted message was promised.
CREATE TABLE mqtt_inbox (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
	function_name TEXT NOT NULL CHECK (function_name <> ''),
	filter        TEXT NOT NULL CHECK (filter <> ''),
	reply         TEXT NOT NULL,
	ordered       INTEGER NOT NULL CHECK (ordered IN (0, 1)),
	topic         TEXT NOT NULL CHECK (topic <> ''),
	payload       BLOB NOT NULL,
	qos           INTEGER NOT NULL CHECK (qos IN (0, 1)),
	retain        INTEGER NOT NULL CHECK (retain IN (0, 1)),
	dup           INTEGER NOT NULL CHECK (dup IN (0, 1)),
	attempts      INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
	last_error    TEXT NOT NULL DEFAULT '',
	received_ns   INTEGER NOT NULL
) STRICT;

-- Replies and dead letters waiting to be published at QoS 1; a row is
-- deleted once the broker acknowledged it.
CREATE TABLE mqtt_outbox (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	topic      TEXT NOT NULL CHECK (topic <> ''),
	payload    BLOB NOT NULL,
	created_ns INTEGER NOT NULL
) STRICT;
