-- The tamper-evident audit trail. Every AuditEvent the server records is
-- stored as an ordinary (searchable) resource and chained here: record n
-- holds SHA-256(hash of record n-1 || n || event id || the event's stored
-- JSON), so changing, removing, inserting or reordering a record breaks
-- the chain from that record on. Checkpoints sign the head of the chain
-- with the server's signing key, so the chain cannot be silently rebuilt.
CREATE TABLE audit_chain (
    tenant    BIGINT NOT NULL REFERENCES tenants(id),
    seq       BIGINT NOT NULL,           -- 1, 2, 3, ... per tenant
    event_id  TEXT NOT NULL,           -- AuditEvent/{event_id}
    recorded  BIGINT NOT NULL,           -- microseconds since the Unix epoch
    hash      BYTEA NOT NULL,             -- 32 bytes
    PRIMARY KEY (tenant, seq)
);
-- The last record of each tenant's chain; appending locks this row, which
-- orders concurrent appenders.
CREATE TABLE audit_head (
    tenant BIGINT PRIMARY KEY REFERENCES tenants(id),
    seq    BIGINT NOT NULL,
    hash   BYTEA NOT NULL
);
-- Signed statements "record seq of tenant has hash h" (a compact JWS made
-- with the server's current signing key).
CREATE TABLE audit_checkpoints (
    tenant    BIGINT NOT NULL REFERENCES tenants(id),
    seq       BIGINT NOT NULL,
    hash      BYTEA NOT NULL,
    created   BIGINT NOT NULL,           -- microseconds since the Unix epoch
    signature TEXT NOT NULL,
    PRIMARY KEY (tenant, seq)
);
