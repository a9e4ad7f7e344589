-- 0002: the access model: principals and their role assignments, API tokens
-- owned by principals, managed challenge configs, delegations and the audit
-- log. Times are unix milliseconds (UTC), durations seconds.
--
-- Ids that other rows or the audit log refer to use AUTOINCREMENT, so a
-- deleted principal's, config's or delegation's id is never given to a new
-- one (the audit log keeps ids without foreign keys).
--
-- The store validates shapes; enumerations (kinds, roles, challenge types)
-- are enforced here by CHECK constraints, which the store reports as
-- ErrInvalid. Which principal may do what is the service's business.

CREATE TABLE principals (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	kind        TEXT NOT NULL CHECK (kind IN ('user', 'app')),
	-- Unique regardless of ASCII case; the store allows only ASCII names.
	name        TEXT NOT NULL COLLATE NOCASE UNIQUE CHECK (length(name) BETWEEN 1 AND 128),
	description TEXT NOT NULL DEFAULT '',
	enabled     INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
	created_at  INTEGER NOT NULL,
	updated_at  INTEGER NOT NULL
) STRICT;

-- domains is a canonical domain match rule (package rules) restricting the
-- role to the base names it allows; '' = every domain.
CREATE TABLE role_assignments (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
	principal_id INTEGER NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
	role         TEXT NOT NULL CHECK (role IN ('admin', 'managed_challenge_admin', 'managed_challenge_consumer')),
	domains      TEXT NOT NULL DEFAULT '',
	created_at   INTEGER NOT NULL,
	UNIQUE (principal_id, role, domains)
) STRICT;

-- The version-1 tokens belong to a principal "admin" that holds, without
-- domain restriction, every role those tokens had; each token is narrowed
-- to its own role, so none gains a permission. Nothing is created when
-- there are no tokens.
INSERT INTO principals (kind, name, description, enabled, created_at, updated_at)
SELECT 'user', 'admin', 'owner of the API tokens created before principals existed', 1,
	CAST(unixepoch('subsec') * 1000 AS INTEGER), CAST(unixepoch('subsec') * 1000 AS INTEGER)
WHERE EXISTS (SELECT 1 FROM api_tokens);

INSERT INTO role_assignments (principal_id, role, domains, created_at)
SELECT (SELECT id FROM principals WHERE name = 'admin'), role, '', CAST(unixepoch('subsec') * 1000 AS INTEGER)
FROM (SELECT DISTINCT role FROM api_tokens)
WHERE role IN ('admin', 'managed_challenge_admin', 'managed_challenge_consumer')
ORDER BY role;

-- api_tokens is rebuilt (no table refers to it, so dropping it inside the
-- migration's transaction with foreign keys on is safe; see migrate.go).
--   principal_id: the owner; its tokens go with it. NULL only for a legacy
--     token created through the version-1 API (Token.Role without
--     Token.PrincipalID), which has just the legacy role.
--   title: the version-1 name.
--   roles: canonical comma list of the roles the token is narrowed to
--     (sorted, unique); '' = all of its principal's roles.
--   allow_cidrs: canonical comma list of source prefixes; '' = any source.
--   role: the version-1 single role, kept for code written before
--     principals; NOT authoritative: a principal's role assignments,
--     narrowed by roles, are.
-- A version-1 token whose role is not a known role could never be
-- authorised; it is narrowed to that role and revoked.
CREATE TABLE api_tokens_new (
	client_id    TEXT PRIMARY KEY CHECK (length(client_id) BETWEEN 1 AND 128),
	principal_id INTEGER REFERENCES principals (id) ON DELETE CASCADE,
	secret_hash  BLOB NOT NULL,
	title        TEXT NOT NULL DEFAULT '',
	description  TEXT NOT NULL DEFAULT '',
	roles        TEXT NOT NULL DEFAULT '',
	allow_cidrs  TEXT NOT NULL DEFAULT '',
	role         TEXT NOT NULL DEFAULT '',
	created_at   INTEGER NOT NULL,
	expires_at   INTEGER,
	revoked_at   INTEGER,
	last_used_at INTEGER,
	CHECK (principal_id IS NOT NULL OR role <> '')
) STRICT;

INSERT INTO api_tokens_new (client_id, principal_id, secret_hash, title, roles, role,
	created_at, expires_at, revoked_at, last_used_at)
SELECT client_id, (SELECT id FROM principals WHERE name = 'admin'), secret_hash, name, role, role,
	created_at, expires_at,
	CASE WHEN role IN ('admin', 'managed_challenge_admin', 'managed_challenge_consumer') THEN revoked_at
		ELSE coalesce(revoked_at, CAST(unixepoch('subsec') * 1000 AS INTEGER)) END,
	last_used_at
FROM api_tokens;

DROP TABLE api_tokens;
ALTER TABLE api_tokens_new RENAME TO api_tokens;
CREATE INDEX api_tokens_principal_id ON api_tokens (principal_id);

-- Managed challenge configs. provider is 'delegated' or (later) a lego
-- provider code; credential_id will refer to the stored credentials table
-- once it exists. ttl and lifetime are seconds, 0 = the service default.
-- Ties between rules are refused by the service (package rules) before a
-- save, atomically through DB.SaveConfigChecked.
CREATE TABLE managed_challenges (
	id             INTEGER PRIMARY KEY AUTOINCREMENT,
	name           TEXT NOT NULL COLLATE NOCASE UNIQUE CHECK (length(name) BETWEEN 1 AND 64),
	challenge_type TEXT NOT NULL CHECK (challenge_type IN ('dns-01')),
	provider       TEXT NOT NULL CHECK (length(provider) BETWEEN 1 AND 64),
	credential_id  INTEGER CHECK (credential_id > 0),
	rule           TEXT NOT NULL CHECK (rule <> ''),
	ttl            INTEGER NOT NULL DEFAULT 0 CHECK (ttl BETWEEN 0 AND 2147483647),
	lifetime       INTEGER NOT NULL DEFAULT 0 CHECK (lifetime BETWEEN 0 AND 2147483647),
	created_at     INTEGER NOT NULL,
	updated_at     INTEGER NOT NULL,
	created_by     TEXT NOT NULL DEFAULT ''
) STRICT;

-- Delegations: domain -> label in the hub zone. name (the label's fqdn) is
-- also a zone_names row, added and removed in the same transaction with a
-- journal row and a serial bump, never by a cascade (which would bypass
-- the journal): so neither referenced row deletes a delegation.
--   domain: base domain, lower-case A-labels, no trailing dot.
--   config_id: the config it is bound to, if any.
--   owner_principal_id: the owning principal (acme-dns accounts), if any.
CREATE TABLE delegations (
	id                 INTEGER PRIMARY KEY AUTOINCREMENT,
	domain             TEXT NOT NULL UNIQUE CHECK (domain <> '' AND domain = lower(domain) AND substr(domain, -1) <> '.'),
	label              TEXT NOT NULL UNIQUE CHECK (label <> '' AND label = lower(label) AND instr(label, '.') = 0),
	name               TEXT NOT NULL UNIQUE CHECK (name = lower(name) AND substr(name, -1) = '.'
		AND substr(name, 1, length(label) + 1) = label || '.' AND length(name) > length(label) + 1),
	config_id          INTEGER REFERENCES managed_challenges (id) ON DELETE SET NULL,
	owner_principal_id INTEGER REFERENCES principals (id) ON DELETE SET NULL,
	created_at         INTEGER NOT NULL,
	created_by         TEXT NOT NULL DEFAULT '',
	last_used_at       INTEGER
) STRICT;

CREATE INDEX delegations_config_id ON delegations (config_id);
CREATE INDEX delegations_owner_principal_id ON delegations (owner_principal_id);

-- The audit log. principal_id and config_id are plain ids, not foreign
-- keys: events outlive what they name. detail never holds secrets. Rows
-- are pruned by age (DB.PruneAudit).
CREATE TABLE audit_events (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
	at           INTEGER NOT NULL,
	principal_id INTEGER,
	token_id     TEXT NOT NULL DEFAULT '',
	source       TEXT NOT NULL DEFAULT '',
	action       TEXT NOT NULL CHECK (action <> ''),
	target       TEXT NOT NULL DEFAULT '',
	domain       TEXT NOT NULL DEFAULT '',
	config_id    INTEGER,
	result       TEXT NOT NULL CHECK (result <> ''),
	detail       TEXT NOT NULL DEFAULT ''
) STRICT;

CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_principal_id ON audit_events (principal_id, id);
CREATE INDEX audit_events_domain ON audit_events (domain, id);
CREATE INDEX audit_events_action ON audit_events (action, id);
CREATE INDEX audit_events_config_id ON audit_events (config_id, id);

-- The tokens changed (a fresh database keeps its generations at 0).
INSERT INTO generations (name, gen)
SELECT 'tokens', 1 WHERE EXISTS (SELECT 1 FROM api_tokens)
	ON CONFLICT (name) DO UPDATE SET gen = gen + 1;
