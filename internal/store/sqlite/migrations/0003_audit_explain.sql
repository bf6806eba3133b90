-- Why an exchange was refused, for admins: a one-line reason and the
-- structured diagnosis (JSON), and an index to find a refusal by the
-- correlation id its caller was given.
ALTER TABLE audit_log ADD COLUMN reason TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_log ADD COLUMN diagnosis TEXT NOT NULL DEFAULT '';
CREATE INDEX audit_log_correlation ON audit_log (correlation_id);
