-- Repeated successful exchanges are kept as one row per identity,
-- credential, subject, audience and minute: how many it stands for (1 for
-- a single exchange).
ALTER TABLE audit_log ADD COLUMN exchange_count INTEGER NOT NULL DEFAULT 1;
