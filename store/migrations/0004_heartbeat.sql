-- One row that the agent's watchdog probe rewrites (systemd.Watchdog): a
-- committed write proves the store is writable, which a read or a pragma
-- does not.
CREATE TABLE heartbeat (
	id      INTEGER PRIMARY KEY CHECK (id = 1),
	beat_ns INTEGER NOT NULL CHECK (beat_ns >= 0)
) STRICT;
