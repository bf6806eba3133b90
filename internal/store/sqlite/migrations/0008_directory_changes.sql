-- What each directory revision changed, for the token service to apply
-- the changes since the revision it holds instead of reading the whole
-- directory: a managed identity (change_key: its client id) or the
-- federated credentials of a parent (change_key: the parent's client id);
-- kind 'other' for any other write (readers reload). Trimmed to the last
-- revisions by the token service.
CREATE TABLE directory_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    revision INTEGER NOT NULL,
    tenant_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    change_key TEXT NOT NULL
);
CREATE INDEX directory_changes_revision ON directory_changes (revision);
