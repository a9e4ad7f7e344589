-- 0003: acme-dns accounts. An account is a credential on a delegation
-- label; the label's domain may not be known yet (an acme-dns client that
-- registers without one), so delegations.domain becomes nullable: NULL =
-- unknown. UNIQUE still holds for the domains that are known.
--
-- delegations is rebuilt the SQLite way (no table refers to it yet, so
-- dropping it inside the migration's transaction with foreign keys on is
-- safe; see migrate.go). Every other CHECK stays as it was.
CREATE TABLE delegations_new (
	id                 INTEGER PRIMARY KEY AUTOINCREMENT,
	domain             TEXT UNIQUE CHECK (domain IS NULL
		OR (domain <> '' AND domain = lower(domain) AND substr(domain, -1) <> '.')),
	label              TEXT NOT NULL UNIQUE CHECK (label <> '' AND label = lower(label) AND instr(label, '.') = 0),
	name               TEXT NOT NULL UNIQUE CHECK (name = lower(name) AND substr(name, -1) = '.'
		AND substr(name, 1, length(label) + 1) = label || '.' AND length(name) > length(label) + 1),
	config_id          INTEGER REFERENCES managed_challenges (id) ON DELETE SET NULL,
	owner_principal_id INTEGER REFERENCES principals (id) ON DELETE SET NULL,
	created_at         INTEGER NOT NULL,
	created_by         TEXT NOT NULL DEFAULT '',
	last_used_at       INTEGER
) STRICT;

INSERT INTO delegations_new (id, domain, label, name, config_id, owner_principal_id, created_at, created_by, last_used_at)
SELECT id, domain, label, name, config_id, owner_principal_id, created_at, created_by, last_used_at FROM delegations;

-- A deleted delegation's id is never reused: carry the AUTOINCREMENT
-- counter over (the copy alone would restart it at the largest id left).
DELETE FROM sqlite_sequence WHERE name = 'delegations_new';
INSERT INTO sqlite_sequence (name, seq) SELECT 'delegations_new', seq FROM sqlite_sequence WHERE name = 'delegations';

DROP TABLE delegations;
ALTER TABLE delegations_new RENAME TO delegations;
CREATE INDEX delegations_config_id ON delegations (config_id);
CREATE INDEX delegations_owner_principal_id ON delegations (owner_principal_id);

-- acme-dns accounts: username (a lower-case UUID) + password on a
-- delegation's label, owned by a principal. Deleting the delegation or the
-- principal deletes the account.
--   password_hash: keyed hash (internal/secret, domain-separated from
--     token secrets); password_sealed: the password sealed with the
--     username as associated data, because it must be shown again (lego
--     storage, exports). Never the password in clear.
--   allow_from: canonical comma list of source prefixes; '' = any source.
CREATE TABLE acme_dns_accounts (
	username           TEXT PRIMARY KEY CHECK (length(username) = 36 AND username = lower(username)),
	delegation_id      INTEGER NOT NULL REFERENCES delegations (id) ON DELETE CASCADE,
	owner_principal_id INTEGER NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
	password_hash      BLOB NOT NULL,
	password_sealed    BLOB NOT NULL,
	allow_from         TEXT NOT NULL DEFAULT '',
	created_at         INTEGER NOT NULL,
	created_by         TEXT NOT NULL DEFAULT '',
	last_used_at       INTEGER
) STRICT;

CREATE INDEX acme_dns_accounts_owner_principal_id ON acme_dns_accounts (owner_principal_id);
CREATE INDEX acme_dns_accounts_delegation_id ON acme_dns_accounts (delegation_id);
