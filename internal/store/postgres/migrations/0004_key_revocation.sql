-- When an operator retired a signing key (wif keys retire): it leaves the
-- JWKS at once, and the record stays for a while to show it.
ALTER TABLE signing_keys ADD COLUMN revoked_us BIGINT NOT NULL DEFAULT 0;
