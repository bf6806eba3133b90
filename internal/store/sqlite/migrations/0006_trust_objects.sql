-- A tenant's trust settings: trusted issuers (where an issuer's keys come
-- from, which algorithms it may use) and issuer sets. Each is a JSON
-- document keyed by (tenant, kind, name); unique_key holds what else must
-- be unique per kind (a trusted issuer's issuer URL).
CREATE TABLE trust_objects (
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    name_key TEXT NOT NULL,
    unique_key TEXT NOT NULL,
    doc TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_us INTEGER NOT NULL,
    updated_us INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, kind, name_key),
    UNIQUE (tenant_id, kind, unique_key)
);
