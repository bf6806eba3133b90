-- The audit log becomes a table partitioned by day (a range of time_us
-- per partition, audit_log_pYYYYMMDD, and audit_log_default for rows no
-- day holds), so that retention drops a whole day at once instead of
-- deleting it row by row on the database the directory lives on. The
-- store creates the coming days' partitions at open and at every prune.
-- A partitioned table's unique keys hold its partition key: a record is
-- identified by (id, time_us), which a replayed record repeats exactly.
CREATE SEQUENCE audit_log_seq_p AS BIGINT;
SELECT setval('audit_log_seq_p', COALESCE((SELECT max(seq) FROM audit_log), 0) + 1, false);
ALTER TABLE audit_log RENAME TO audit_log_unpartitioned;
CREATE TABLE audit_log (
    seq BIGINT NOT NULL DEFAULT nextval('audit_log_seq_p'),
    id TEXT COLLATE "C" NOT NULL,
    time_us BIGINT NOT NULL,
    tenant_id TEXT COLLATE "C" NOT NULL,
    client_id TEXT COLLATE "C" NOT NULL,
    credential_name TEXT NOT NULL,
    grant_type TEXT NOT NULL,
    resource TEXT NOT NULL,
    issuer TEXT NOT NULL,
    subject TEXT NOT NULL,
    jti_hash TEXT NOT NULL,
    result TEXT NOT NULL,
    error_code INTEGER NOT NULL,
    error TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    remote_addr TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    diagnosis TEXT NOT NULL DEFAULT '',
    audience TEXT NOT NULL DEFAULT '',
    exchange_count INTEGER NOT NULL DEFAULT 1,
    CONSTRAINT audit_log_part_pkey PRIMARY KEY (time_us, seq),
    CONSTRAINT audit_log_part_id UNIQUE (id, time_us)
) PARTITION BY RANGE (time_us);
ALTER SEQUENCE audit_log_seq_p OWNED BY audit_log.seq;
CREATE TABLE audit_log_default PARTITION OF audit_log DEFAULT;
-- UTC days for the records kept (at most the last 40) and the next three.
DO $$
DECLARE
    today date := (now() AT TIME ZONE 'UTC')::date;
    first_day date := (SELECT (to_timestamp(min(time_us) / 1e6) AT TIME ZONE 'UTC')::date FROM audit_log_unpartitioned);
    d date;
BEGIN
    IF first_day IS NULL THEN
        first_day := today;
    END IF;
    first_day := greatest(first_day, today - 40);
    d := least(first_day, today);
    WHILE d <= today + 3 LOOP
        EXECUTE format('CREATE TABLE %I PARTITION OF audit_log FOR VALUES FROM (%s) TO (%s)',
            'audit_log_p' || to_char(d, 'YYYYMMDD'),
            (extract(epoch FROM d::timestamp) * 1000000)::bigint,
            (extract(epoch FROM (d + 1)::timestamp) * 1000000)::bigint);
        d := d + 1;
    END LOOP;
END $$;
INSERT INTO audit_log (seq, id, time_us, tenant_id, client_id, credential_name, grant_type, resource, issuer, subject, jti_hash,
    result, error_code, error, correlation_id, remote_addr, reason, diagnosis, audience, exchange_count)
SELECT seq, id, time_us, tenant_id, client_id, credential_name, grant_type, resource, issuer, subject, jti_hash,
    result, error_code, error, correlation_id, remote_addr, reason, diagnosis, audience, exchange_count
FROM audit_log_unpartitioned;
DROP TABLE audit_log_unpartitioned;
CREATE INDEX audit_log_tenant_time ON audit_log (tenant_id, time_us, seq);
CREATE INDEX audit_log_client_time ON audit_log (client_id, time_us, seq);
CREATE INDEX audit_log_correlation ON audit_log (correlation_id);
