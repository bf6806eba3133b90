-- What a replay needs (wif apply --dry-run --replay): the assertion's
-- audiences, as a JSON array ('' when unread).
ALTER TABLE audit_log ADD COLUMN audience TEXT NOT NULL DEFAULT '';

-- When each federated credential last matched an exchange (batched off the
-- token endpoint's hot path); gone with its credential.
CREATE TABLE credential_usage (
    credential_id TEXT COLLATE "C" PRIMARY KEY REFERENCES federated_credentials (id) ON DELETE CASCADE,
    last_used_us BIGINT NOT NULL
);

-- How each external issuer has answered fetches of its metadata and keys,
-- merged over replicas (wif audit stale).
CREATE TABLE issuer_status (
    issuer TEXT COLLATE "C" PRIMARY KEY,
    last_success_us BIGINT NOT NULL,
    last_failure_us BIGINT NOT NULL,
    failing_since_us BIGINT NOT NULL,
    last_error TEXT NOT NULL
);
