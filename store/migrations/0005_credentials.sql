-- 0005: stored upstream credentials. A credential set is a provider code
-- and named fields; the values are sealed by the service (internal/secret,
-- XChaCha20-Poly1305, key id inside the blob) and never stored in clear.
--   uid: random, fixed for the row's life; the seal's associated data, so
--     a blob copied to another row does not open there.
--   field_names: canonical comma list of the field names (for listing).
--   fingerprint: keyed hash of the sealed plaintext: "did it change",
--     without revealing anything; kept as is when a key rotation reseals.
--   generation: 1 on create, +1 on every change of the fields.
-- managed_challenges.credential_id (0002) refers to id; it is not a
-- foreign key there, so DeleteCredential checks it itself.
CREATE TABLE upstream_credentials (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	uid         TEXT NOT NULL UNIQUE CHECK (length(uid) BETWEEN 16 AND 64),
	name        TEXT NOT NULL COLLATE NOCASE UNIQUE CHECK (length(name) BETWEEN 1 AND 64),
	provider    TEXT NOT NULL CHECK (length(provider) BETWEEN 1 AND 64),
	field_names TEXT NOT NULL CHECK (field_names <> ''),
	sealed      BLOB NOT NULL CHECK (length(sealed) > 0),
	fingerprint BLOB NOT NULL CHECK (length(fingerprint) > 0),
	generation  INTEGER NOT NULL DEFAULT 1 CHECK (generation > 0),
	created_at  INTEGER NOT NULL,
	updated_at  INTEGER NOT NULL,
	created_by  TEXT NOT NULL DEFAULT ''
) STRICT;

CREATE INDEX managed_challenges_credential_id ON managed_challenges (credential_id);
