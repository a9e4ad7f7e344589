-- 0007: TSIG keys as a kind of API token. A TSIG key is a credential of a
-- principal like an API token (narrowing, source allow-list, expiry,
-- revocation, last use, the "tokens" generation), so it is a row of
-- api_tokens with kind 'tsig':
--   client_id: the key name, a lower-case DNS name with the final dot (up
--     to 253 bytes before it), which no API client id has.
--   secret_hash: empty: the HMAC needs the secret itself.
--   sealed_secret: the raw HMAC key sealed by the service (internal/secret)
--     with "api_tokens/tsig/" + client_id as associated data; NULL for
--     API tokens.
--   tsig_algorithm: miekg/dns's name of the HMAC ('hmac-sha256.', ...);
--     '' for API tokens.
-- The client_id CHECK of 0002 allowed at most 128 bytes, too few for a key
-- name, so the table is rebuilt (no table refers to it: see migrate.go);
-- API tokens keep the 128-byte limit through the kind CHECK.
CREATE TABLE api_tokens_new (
	client_id      TEXT PRIMARY KEY CHECK (length(client_id) BETWEEN 1 AND 254),
	principal_id   INTEGER REFERENCES principals (id) ON DELETE CASCADE,
	secret_hash    BLOB NOT NULL,
	title          TEXT NOT NULL DEFAULT '',
	description    TEXT NOT NULL DEFAULT '',
	roles          TEXT NOT NULL DEFAULT '',
	allow_cidrs    TEXT NOT NULL DEFAULT '',
	role           TEXT NOT NULL DEFAULT '',
	created_at     INTEGER NOT NULL,
	expires_at     INTEGER,
	revoked_at     INTEGER,
	last_used_at   INTEGER,
	kind           TEXT NOT NULL DEFAULT 'api' CHECK (kind IN ('api', 'tsig')),
	tsig_algorithm TEXT NOT NULL DEFAULT '',
	sealed_secret  BLOB,
	CHECK (principal_id IS NOT NULL OR role <> ''),
	CHECK (CASE kind
		WHEN 'api' THEN length(client_id) <= 128 AND tsig_algorithm = '' AND sealed_secret IS NULL
		ELSE principal_id IS NOT NULL AND role = '' AND length(secret_hash) = 0
			AND sealed_secret IS NOT NULL AND length(sealed_secret) > 0
			AND client_id = lower(client_id) AND substr(client_id, -1) = '.' AND length(client_id) >= 2
			AND tsig_algorithm IN ('hmac-md5.sig-alg.reg.int.', 'hmac-sha1.', 'hmac-sha224.',
				'hmac-sha256.', 'hmac-sha384.', 'hmac-sha512.')
	END)
) STRICT;

INSERT INTO api_tokens_new (client_id, principal_id, secret_hash, title, description, roles, allow_cidrs, role,
	created_at, expires_at, revoked_at, last_used_at)
SELECT client_id, principal_id, secret_hash, title, description, roles, allow_cidrs, role,
	created_at, expires_at, revoked_at, last_used_at
FROM api_tokens;

DROP TABLE api_tokens;
ALTER TABLE api_tokens_new RENAME TO api_tokens;
CREATE INDEX api_tokens_principal_id ON api_tokens (principal_id);
