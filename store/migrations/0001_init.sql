-- 0001: the zone (values, names, serial, journal), generation counters,
-- meta and the bootstrap admin token. Times are unix milliseconds (UTC).

CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
) STRICT;

INSERT INTO meta (key, value) VALUES ('created_at', CAST(CAST(unixepoch('subsec') * 1000 AS INTEGER) AS TEXT));

-- One row: the zone serial counter, published mod 2^32.
CREATE TABLE zone_state (
	id     INTEGER PRIMARY KEY CHECK (id = 1),
	serial INTEGER NOT NULL CHECK (serial >= 0)
) STRICT;

INSERT INTO zone_state (id, serial) VALUES (1, 1);

CREATE TABLE txt_values (
	name       TEXT NOT NULL,
	value      TEXT NOT NULL,
	ttl        INTEGER NOT NULL CHECK (ttl >= 0 AND ttl <= 2147483647),
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	created_by TEXT NOT NULL DEFAULT '',
	UNIQUE (name, value)
) STRICT;

CREATE INDEX txt_values_expires_at ON txt_values (expires_at);
CREATE INDEX txt_values_created_by ON txt_values (created_by);

-- Names that exist without values (delegation labels): NODATA, not NXDOMAIN.
CREATE TABLE zone_names (
	name       TEXT PRIMARY KEY,
	created_at INTEGER NOT NULL,
	created_by TEXT NOT NULL DEFAULT ''
) STRICT;

-- Every zone change, tagged with the serial of its transaction.
CREATE TABLE zone_journal (
	id     INTEGER PRIMARY KEY,
	serial INTEGER NOT NULL,
	op     INTEGER NOT NULL CHECK (op BETWEEN 1 AND 4),
	name   TEXT NOT NULL,
	value  TEXT NOT NULL DEFAULT '',
	ttl    INTEGER NOT NULL DEFAULT 0,
	at     INTEGER NOT NULL
) STRICT;

CREATE INDEX zone_journal_serial ON zone_journal (serial);

-- Change counters of cached tables other than the zone (tokens, configs).
CREATE TABLE generations (
	name TEXT PRIMARY KEY,
	gen  INTEGER NOT NULL
) STRICT;

CREATE TABLE api_tokens (
	client_id    TEXT PRIMARY KEY,
	secret_hash  BLOB NOT NULL,
	name         TEXT NOT NULL DEFAULT '',
	role         TEXT NOT NULL,
	created_at   INTEGER NOT NULL,
	expires_at   INTEGER,
	revoked_at   INTEGER,
	last_used_at INTEGER
) STRICT;
