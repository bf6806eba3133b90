-- wif schema, version 1. Ids are stored lower-case (the store canonicalises
-- GUIDs); *_key columns hold the lower-case form of names that compare
-- case-insensitively; times are microseconds since the Unix epoch in UTC
-- (0 = unset); nested fields are JSON text.

CREATE TABLE directory_revision (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    revision INTEGER NOT NULL
);
INSERT INTO directory_revision (id, revision) VALUES (1, 0);

CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_us INTEGER NOT NULL,
    updated_us INTEGER NOT NULL
);

-- Every caller of the token endpoint, application or managed identity: the
-- client ids share one namespace, and so do the principal ids (service
-- principal object ids), as the token service resolves them.
CREATE TABLE principals (
    client_id TEXT PRIMARY KEY,
    principal_id TEXT NOT NULL UNIQUE,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kind TEXT NOT NULL
);
CREATE INDEX principals_tenant ON principals (tenant_id);

CREATE TABLE applications (
    app_id TEXT PRIMARY KEY REFERENCES principals (client_id) ON DELETE CASCADE,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    object_id TEXT NOT NULL UNIQUE,
    service_principal_id TEXT NOT NULL,
    display_name TEXT NOT NULL,
    identifier_uris TEXT NOT NULL,
    app_roles TEXT NOT NULL,
    requested_access_token_version INTEGER NOT NULL,
    version INTEGER NOT NULL,
    created_us INTEGER NOT NULL,
    updated_us INTEGER NOT NULL
);
CREATE INDEX applications_tenant ON applications (tenant_id, app_id);

-- Identifier URIs are unique per tenant (lower case, no trailing '/').
CREATE TABLE application_uris (
    tenant_id TEXT NOT NULL,
    uri_key TEXT NOT NULL,
    app_id TEXT NOT NULL REFERENCES applications (app_id) ON DELETE CASCADE,
    PRIMARY KEY (tenant_id, uri_key)
);
CREATE INDEX application_uris_app ON application_uris (app_id);

CREATE TABLE managed_identities (
    client_id TEXT PRIMARY KEY REFERENCES principals (client_id) ON DELETE CASCADE,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    subscription_id TEXT NOT NULL,
    resource_group TEXT NOT NULL,
    resource_group_key TEXT NOT NULL,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL,
    location TEXT NOT NULL,
    principal_id TEXT NOT NULL,
    tags TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_us INTEGER NOT NULL,
    updated_us INTEGER NOT NULL,
    UNIQUE (tenant_id, subscription_id, resource_group_key, name_key)
);

CREATE TABLE federated_credentials (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    parent_kind TEXT NOT NULL,
    parent_client_id TEXT NOT NULL REFERENCES principals (client_id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL,
    issuer TEXT NOT NULL,
    subject TEXT NOT NULL,
    claims_expression TEXT,
    audiences TEXT NOT NULL,
    description TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_us INTEGER NOT NULL,
    updated_us INTEGER NOT NULL,
    UNIQUE (parent_client_id, name_key)
);
CREATE INDEX federated_credentials_tenant ON federated_credentials (tenant_id);
CREATE UNIQUE INDEX federated_credentials_issuer_subject
    ON federated_credentials (parent_client_id, issuer, subject) WHERE claims_expression IS NULL;

CREATE TABLE app_role_assignments (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    principal_id TEXT NOT NULL REFERENCES principals (principal_id) ON DELETE CASCADE,
    resource_app_id TEXT NOT NULL REFERENCES applications (app_id) ON DELETE CASCADE,
    app_role_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_us INTEGER NOT NULL,
    updated_us INTEGER NOT NULL,
    UNIQUE (principal_id, resource_app_id, app_role_id)
);
CREATE INDEX app_role_assignments_tenant ON app_role_assignments (tenant_id, id);
CREATE INDEX app_role_assignments_resource ON app_role_assignments (resource_app_id);

CREATE TABLE signing_keys (
    id TEXT PRIMARY KEY,
    algorithm TEXT NOT NULL,
    private_key BLOB NOT NULL,
    kek_id TEXT NOT NULL,
    certificate BLOB NOT NULL,
    created_us INTEGER NOT NULL,
    publish_us INTEGER NOT NULL,
    activate_us INTEGER NOT NULL,
    retire_us INTEGER NOT NULL,
    expire_us INTEGER NOT NULL
);

-- seq orders records appended in the same microsecond and is never reused
-- (AUTOINCREMENT), so audit cursors stay valid across prunes.
CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    time_us INTEGER NOT NULL,
    tenant_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
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
