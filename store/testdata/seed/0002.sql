-- Rows a version-2 database may hold (besides those of 0001.sql, which the
-- migration gave the principal "admin"); the migration tests carry them to
-- the latest schema and check that none is lost.
INSERT INTO principals (kind, name, description, enabled, created_at, updated_at) VALUES
	('app', 'ci-bot', 'seed', 1, 1700000000000, 1700000000000),
	('user', 'alice@example.org', '', 0, 1700000000000, 1700000000000);
INSERT INTO role_assignments (principal_id, role, domains, created_at)
	SELECT id, 'managed_challenge_consumer', '*.example.org', 1700000000000 FROM principals WHERE name = 'ci-bot';
INSERT INTO api_tokens (client_id, principal_id, secret_hash, title, description, roles, allow_cidrs, role,
		created_at, expires_at, revoked_at, last_used_at)
	SELECT 'seedapp', id, X'44556677', 'ci', 'seed', 'managed_challenge_consumer', '192.0.2.0/24,2001:db8::/32', '',
		1700000000000, 4102444800000, NULL, 1700000001000 FROM principals WHERE name = 'ci-bot';
INSERT INTO managed_challenges (name, challenge_type, provider, credential_id, rule, ttl, lifetime,
		created_at, updated_at, created_by) VALUES
	('default', 'dns-01', 'delegated', NULL, '*', 60, 3600, 1700000000000, 1700000000000, 'seed'),
	('org', 'dns-01', 'delegated', NULL, '*.example.org', 0, 0, 1700000000000, 1700000000000, 'seed');
INSERT INTO delegations (domain, label, name, config_id, owner_principal_id, created_at, created_by, last_used_at)
	SELECT 'example.net', 'd1', 'd1.hub.example.net.', id, NULL, 1700000000000, 'seed', NULL
	FROM managed_challenges WHERE name = 'default';
INSERT INTO zone_names (name, created_at, created_by) VALUES ('d1.hub.example.net.', 1700000000000, 'seed');
INSERT INTO audit_events (at, principal_id, token_id, source, action, target, domain, config_id, result, detail) VALUES
	(1700000000000, NULL, 'nobody', '192.0.2.1', 'auth', '', '', NULL, 'failed_auth', 'seed'),
	(1700000002000, 1, 'seedclient', '192.0.2.2', 'challenge.present', '_acme-challenge.example.net.', 'example.net', 1, 'ok', '');
INSERT INTO generations (name, gen) VALUES ('principals', 2), ('configs', 2), ('delegations', 1)
	ON CONFLICT (name) DO UPDATE SET gen = excluded.gen;
