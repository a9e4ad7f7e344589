-- 0004: the last delegation check of each delegation (is the CNAME at
-- _acme-challenge.<domain> in place?). Every column is NULL until the
-- first check.
--   check_state: ok, missing, wrong_target, conflict, inconsistent,
--     unreachable or invalid (internal/dnscheck); not constrained to that
--     list, so a later state needs no table rebuild.
--   check_evidence: JSON, what each server answered; opaque to the store.
--   checked_at: Unix ms of the last check; check_since: Unix ms since
--     which check_state has held (the first check that found it).
ALTER TABLE delegations ADD COLUMN check_state TEXT CHECK (check_state IS NULL OR check_state <> '');
ALTER TABLE delegations ADD COLUMN check_detail TEXT;
ALTER TABLE delegations ADD COLUMN check_evidence TEXT;
ALTER TABLE delegations ADD COLUMN checked_at INTEGER;
ALTER TABLE delegations ADD COLUMN check_since INTEGER;

-- Listing by state, and the background checker's "oldest checked first".
CREATE INDEX delegations_check_state ON delegations (check_state);
CREATE INDEX delegations_checked_at ON delegations (checked_at);
