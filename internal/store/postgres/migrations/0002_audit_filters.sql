-- Indexes for the audit log's usual filters (by tenant, by client), so a
-- filtered page reads only matching rows, newest first.
CREATE INDEX audit_log_tenant_time ON audit_log (tenant_id, time_us, seq);
CREATE INDEX audit_log_client_time ON audit_log (client_id, time_us, seq);
