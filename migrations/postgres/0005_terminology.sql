-- Code system releases imported with `charaka terminology import`: the
-- derived form (gzip) of each version, loaded into memory at start.
CREATE TABLE terminology_releases (
    system TEXT NOT NULL,
    version TEXT NOT NULL,
    loaded_at BIGINT NOT NULL,
    source_sha256 TEXT NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (system, version)
);
