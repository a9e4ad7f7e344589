-- Rows a version-1 database may hold; the migration tests carry them to the
-- latest schema and check that none is lost.
INSERT INTO meta (key, value) VALUES ('key_check', 'c2VlZA');
INSERT INTO txt_values (name, value, ttl, created_at, expires_at, created_by) VALUES
	('_acme-challenge.example.org.', 'seed-value-1', 60, 1700000000000, 4102444800000, 'seed'),
	('_acme-challenge.example.org.', 'seed-value-2', 60, 1700000000000, 4102444800000, 'seed'),
	('abc.hub.example.net.', 'seed-value-3', 120, 1700000000000, 4102444800000, '');
INSERT INTO zone_names (name, created_at, created_by) VALUES ('abc.hub.example.net.', 1700000000000, 'seed');
UPDATE zone_state SET serial = 42 WHERE id = 1;
INSERT INTO zone_journal (serial, op, name, value, ttl, at) VALUES
	(42, 1, '_acme-challenge.example.org.', 'seed-value-1', 60, 1700000000000);
INSERT INTO generations (name, gen) VALUES ('tokens', 3);
INSERT INTO api_tokens (client_id, secret_hash, name, role, created_at, expires_at) VALUES
	('seedclient', X'00112233', 'bootstrap', 'admin', 1700000000000, NULL);
