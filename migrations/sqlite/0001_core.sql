-- Core storage: resources (one row per logical resource, pointing at its
-- current version) and resource_versions (every version ever written).
-- Every row carries a tenant so that hospitals can be partitioned later.
-- Timestamps are microseconds since the Unix epoch, UTC.

CREATE TABLE tenants (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
INSERT INTO tenants (id, name) VALUES (1, 'default');

CREATE TABLE resources (
    rid          INTEGER PRIMARY KEY,
    tenant       INTEGER NOT NULL REFERENCES tenants (id),
    type         TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    version      INTEGER NOT NULL,
    deleted      INTEGER NOT NULL DEFAULT 0,
    last_updated INTEGER NOT NULL,
    UNIQUE (tenant, type, id)
);

CREATE TABLE resource_versions (
    seq          INTEGER PRIMARY KEY,   -- global write order (history paging)
    rid          INTEGER NOT NULL REFERENCES resources (rid),
    tenant       INTEGER NOT NULL,
    type         TEXT    NOT NULL,
    version      INTEGER NOT NULL,
    last_updated INTEGER NOT NULL,
    method       TEXT    NOT NULL,      -- POST, PUT, PATCH or DELETE
    body         BLOB,                  -- codec envelope; NULL for DELETE
    UNIQUE (rid, version)
);
CREATE INDEX resource_versions_by_type ON resource_versions (tenant, type, seq);
CREATE INDEX resource_versions_by_tenant ON resource_versions (tenant, seq);

-- Token index rows (system|code) of the current version of each resource.
-- The core fills it for `identifier`; the search issue extends it.
CREATE TABLE search_token (
    rid      INTEGER NOT NULL REFERENCES resources (rid),
    tenant   INTEGER NOT NULL,
    type     TEXT    NOT NULL,
    param    TEXT    NOT NULL,
    system   TEXT    NOT NULL,          -- '' when the value has no system
    code     TEXT    NOT NULL
);
CREATE INDEX search_token_lookup ON search_token (tenant, type, param, code, system);
CREATE INDEX search_token_by_rid ON search_token (rid);
