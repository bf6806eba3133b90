-- wif schema for PostgreSQL, version 1 (the same tables as SQLite's; key
-- columns use the "C" collation so that they sort byte-wise, as in SQLite
-- and Go). Ids are stored lower-case (the store canonicalises
-- GUIDs); *_key columns hold the lower-case form of names that compare
-- case-insensitively; times are microseconds since the Unix epoch in UTC
-- (0 = unset); nested fields are JSON text (kept as text, not jsonb, so both
-- backends store the same bytes).

CREATE TABLE directory_revision (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    revision BIGINT NOT NULL
);
INSERT INTO directory_revision (id, revision) VALUES (1, 0);

CREATE TABLE tenants (
    id TEXT COLLATE "C" PRIMARY KEY,
    display_name TEXT NOT NULL,
    version BIGINT NOT NULL,
    created_us BIGINT NOT NULL,
    updated_us BIGINT NOT NULL
);

-- Every caller of the token endpoint, application or managed identity: the
-- client ids share one namespace, and so do the principal ids (service
-- principal object ids), as the token service resolves them.
CREATE TABLE principals (
    client_id TEXT COLLATE "C" PRIMARY KEY,
    principal_id TEXT COLLATE "C" NOT NULL UNIQUE,
    tenant_id TEXT COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kind TEXT NOT NULL
);
CREATE INDEX principals_tenant ON principals (tenant_id);

CREATE TABLE applications (
    app_id TEXT COLLATE "C" PRIMARY KEY REFERENCES principals (client_id) ON DELETE CASCADE,
    tenant_id TEXT COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    object_id TEXT COLLATE "C" NOT NULL UNIQUE,
    service_principal_id TEXT COLLATE "C" NOT NULL,
    display_name TEXT NOT NULL,
    identifier_uris TEXT NOT NULL,
    app_roles TEXT NOT NULL,
    requested_access_token_version INTEGER NOT NULL,
    version BIGINT NOT NULL,
    created_us BIGINT NOT NULL,
    updated_us BIGINT NOT NULL
);
CREATE INDEX applications_tenant ON applications (tenant_id, app_id);

-- Identifier URIs are unique per tenant (lower case, no trailing '/').
CREATE TABLE application_uris (
    tenant_id TEXT COLLATE "C" NOT NULL,
    uri_key TEXT COLLATE "C" NOT NULL,
    app_id TEXT COLLATE "C" NOT NULL REFERENCES applications (app_id) ON DELETE CASCADE,
    PRIMARY KEY (tenant_id, uri_key)
);
CREATE INDEX application_uris_app ON application_uris (app_id);

CREATE TABLE managed_identities (
    client_id TEXT COLLATE "C" PRIMARY KEY REFERENCES principals (client_id) ON DELETE CASCADE,
    tenant_id TEXT COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    subscription_id TEXT COLLATE "C" NOT NULL,
    resource_group TEXT NOT NULL,
    resource_group_key TEXT COLLATE "C" NOT NULL,
    name TEXT NOT NULL,
    name_key TEXT COLLATE "C" NOT NULL,
    location TEXT NOT NULL,
    principal_id TEXT COLLATE "C" NOT NULL,
    tags TEXT NOT NULL,
    version BIGINT NOT NULL,
    created_us BIGINT NOT NULL,
    updated_us BIGINT NOT NULL,
    UNIQUE (tenant_id, subscription_id, resource_group_key, name_key)
);

CREATE TABLE federated_credentials (
    id TEXT COLLATE "C" PRIMARY KEY,
    tenant_id TEXT COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    parent_kind TEXT NOT NULL,
    parent_client_id TEXT COLLATE "C" NOT NULL REFERENCES principals (client_id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    name_key TEXT COLLATE "C" NOT NULL,
    issuer TEXT NOT NULL,
    subject TEXT NOT NULL,
    claims_expression TEXT,
    audiences TEXT NOT NULL,
    description TEXT NOT NULL,
    version BIGINT NOT NULL,
    created_us BIGINT NOT NULL,
    updated_us BIGINT NOT NULL,
    UNIQUE (parent_client_id, name_key)
);
CREATE INDEX federated_credentials_tenant ON federated_credentials (tenant_id);
CREATE UNIQUE INDEX federated_credentials_issuer_subject
    ON federated_credentials (parent_client_id, issuer, subject) WHERE claims_expression IS NULL;

CREATE TABLE app_role_assignments (
    id TEXT COLLATE "C" PRIMARY KEY,
    tenant_id TEXT COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    principal_id TEXT COLLATE "C" NOT NULL REFERENCES principals (principal_id) ON DELETE CASCADE,
    resource_app_id TEXT COLLATE "C" NOT NULL REFERENCES applications (app_id) ON DELETE CASCADE,
    app_role_id TEXT COLLATE "C" NOT NULL,
    version BIGINT NOT NULL,
    created_us BIGINT NOT NULL,
    updated_us BIGINT NOT NULL,
    UNIQUE (principal_id, resource_app_id, app_role_id)
);
CREATE INDEX app_role_assignments_tenant ON app_role_assignments (tenant_id, id);
CREATE INDEX app_role_assignments_resource ON app_role_assignments (resource_app_id);

CREATE TABLE signing_keys (
    id TEXT COLLATE "C" PRIMARY KEY,
    algorithm TEXT NOT NULL,
    private_key BYTEA NOT NULL,
    kek_id TEXT NOT NULL,
    certificate BYTEA NOT NULL,
    created_us BIGINT NOT NULL,
    publish_us BIGINT NOT NULL,
    activate_us BIGINT NOT NULL,
    retire_us BIGINT NOT NULL,
    expire_us BIGINT NOT NULL
);

-- seq orders records appended in the same microsecond and is never reused
-- (an identity column), so audit cursors stay valid across prunes.
CREATE TABLE audit_log (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT COLLATE "C" NOT NULL UNIQUE,
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
    remote_addr TEXT NOT NULL
);
CREATE INDEX audit_log_time ON audit_log (time_us, seq);
