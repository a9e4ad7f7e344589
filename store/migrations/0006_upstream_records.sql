-- 0006: upstream forwarding. A managed challenge config naming an upstream
-- provider says how it is driven, and every TXT value the hub writes into
-- a domain's own DNS is persisted before the provider is called, so none
-- is forgotten: clean-ups are retried across restarts, and what cannot be
-- removed is reported.
--
-- managed_challenges.upstream_engine: '' (the hub picks: the value-level
-- driver where the provider has one, else lego), 'value' or 'lego'.
-- Always '' for provider 'delegated' (the store checks that).
ALTER TABLE managed_challenges ADD COLUMN upstream_engine TEXT NOT NULL DEFAULT ''
	CHECK (upstream_engine IN ('', 'value', 'lego'));

-- upstream_records: one row per value written (or being written) upstream.
-- Times are unix milliseconds, as elsewhere.
--   config_id: the config that allowed it; a plain id, not a foreign key:
--     a record outlives its config (it still has to be removed).
--   credential_id: the credential that wrote it; removal must use the
--     same. A plain id too: DeleteCredential refuses while rows refer to
--     it, since a record removed with no credential would be forgotten.
--   provider, engine: how it was written ('value': a value-level driver,
--     'lego': a lego provider in a worker process, whose CleanUp needs
--     key_auth).
--   domain: lego's "domain" (base name, no "*.", no final dot); fqdn: the
--     record name written, lower-case with the final dot; value: the TXT
--     value; key_auth: the key authorization ('' unless engine 'lego'; not
--     a secret: the CA publishes it); ttl in seconds.
--   state: 'adding' (the provider call is in flight, or the process died
--     during it), 'live' (published; removed on clean-up or at
--     expires_at), 'removing' (removal due at next_attempt_at, retried with
--     backoff), 'cleaning' (a removal call is in flight, claimed until
--     next_attempt_at; past it the claimant died), 'failed' (removal given
--     up: reported until an admin retries or forgets it). Every change of
--     state is conditional on the state (and times) the writer read, so
--     two writers never both act on a row.
--   attempts, last_error: failed removal attempts so far and the last
--     failure (never secrets; the store caps it at 512 bytes).
--   created_at: when the row was (re)entered into 'adding'; an 'adding'
--     row older than the provider call timeout is stale.
--   expires_at: removed then, whether or not the client cleans up.
--   next_attempt_at: when a 'removing' row is tried next, or when a
--     'cleaning' claim lapses; 0 = not set.
-- UNIQUE (credential_id, fqdn, value): one row per value a credential
-- wrote at a name; it also serves DeleteCredential's count and the
-- "another value at this name" check for providers that replace the set.
CREATE TABLE upstream_records (
	id              INTEGER PRIMARY KEY AUTOINCREMENT,
	config_id       INTEGER NOT NULL CHECK (config_id > 0),
	credential_id   INTEGER NOT NULL CHECK (credential_id > 0),
	provider        TEXT NOT NULL CHECK (length(provider) BETWEEN 1 AND 64),
	engine          TEXT NOT NULL CHECK (engine IN ('value', 'lego')),
	domain          TEXT NOT NULL CHECK (length(domain) BETWEEN 1 AND 253),
	fqdn            TEXT NOT NULL CHECK (length(fqdn) BETWEEN 2 AND 255),
	value           TEXT NOT NULL CHECK (value <> ''),
	key_auth        TEXT NOT NULL DEFAULT '' CHECK (length(key_auth) <= 1024),
	ttl             INTEGER NOT NULL DEFAULT 0 CHECK (ttl BETWEEN 0 AND 2147483647),
	state           TEXT NOT NULL CHECK (state IN ('adding', 'live', 'removing', 'cleaning', 'failed')),
	attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
	last_error      TEXT NOT NULL DEFAULT '' CHECK (length(CAST(last_error AS BLOB)) <= 512),
	created_by      TEXT NOT NULL DEFAULT '',
	created_at      INTEGER NOT NULL,
	expires_at      INTEGER NOT NULL,
	next_attempt_at INTEGER NOT NULL DEFAULT 0,
	UNIQUE (credential_id, fqdn, value),
	CHECK (engine = 'value' OR key_auth <> '')
) STRICT;

-- DueUpstreamRecords: one index per kind of due work (state + its time),
-- which also serve listing and counting by state.
CREATE INDEX upstream_records_live ON upstream_records (state, expires_at);
CREATE INDEX upstream_records_removing ON upstream_records (state, next_attempt_at);
CREATE INDEX upstream_records_adding ON upstream_records (state, created_at);
-- Lookups by record name across credentials.
CREATE INDEX upstream_records_fqdn ON upstream_records (fqdn, value);
