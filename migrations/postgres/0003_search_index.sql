-- Search index: one table per parameter type, holding the values of the
-- current version of each live resource (see src/store/index.rs). `pid`
-- names the parameter (a stable hash of resource type and code), `grp`
-- ties the components of a composite parameter together. The values are
-- rebuilt by the reindex job whenever the set of parameters changes
-- (search_index_state). The normalised strings and URIs use the "C" collation: byte order, so
-- that prefix ranges (norm >= x AND norm < x || U+10FFFF) use the indexes.

DROP TABLE search_token;

CREATE TABLE sp_string (
    rid    BIGINT  NOT NULL,
    tenant BIGINT  NOT NULL,
    pid    INTEGER NOT NULL,
    grp    INTEGER NOT NULL,
    norm   TEXT COLLATE "C" NOT NULL,   -- lower case, no accents
    exact  TEXT COLLATE "C" NOT NULL
);
CREATE INDEX sp_string_value ON sp_string (tenant, pid, norm, rid);
CREATE INDEX sp_string_rid ON sp_string (rid, pid);

CREATE TABLE sp_token (
    rid    BIGINT  NOT NULL,
    tenant BIGINT  NOT NULL,
    pid    INTEGER NOT NULL,
    grp    INTEGER NOT NULL,
    system TEXT    NOT NULL,   -- '' when the value has no system
    code   TEXT    NOT NULL
);
CREATE INDEX sp_token_value ON sp_token (tenant, pid, code, rid, system);
CREATE INDEX sp_token_rid ON sp_token (rid, pid);

CREATE TABLE sp_date (
    rid    BIGINT  NOT NULL,
    tenant BIGINT  NOT NULL,
    pid    INTEGER NOT NULL,
    grp    INTEGER NOT NULL,
    lo     BIGINT  NOT NULL,   -- first microsecond covered
    hi     BIGINT  NOT NULL    -- last microsecond covered
);
CREATE INDEX sp_date_value ON sp_date (tenant, pid, lo, hi);
CREATE INDEX sp_date_rid ON sp_date (rid, pid);

CREATE TABLE sp_number (
    rid    BIGINT  NOT NULL,
    tenant BIGINT  NOT NULL,
    pid    INTEGER NOT NULL,
    grp    INTEGER NOT NULL,
    lo     DOUBLE PRECISION NOT NULL,
    hi     DOUBLE PRECISION NOT NULL
);
CREATE INDEX sp_number_value ON sp_number (tenant, pid, lo);
CREATE INDEX sp_number_rid ON sp_number (rid, pid);

CREATE TABLE sp_quantity (
    rid        BIGINT  NOT NULL,
    tenant     BIGINT  NOT NULL,
    pid        INTEGER NOT NULL,
    grp        INTEGER NOT NULL,
    system     TEXT    NOT NULL,
    code       TEXT    NOT NULL,
    lo         DOUBLE PRECISION NOT NULL,
    hi         DOUBLE PRECISION NOT NULL,
    canon_unit TEXT    NOT NULL,   -- '' when the unit is not convertible UCUM
    canon_lo   DOUBLE PRECISION NOT NULL,
    canon_hi   DOUBLE PRECISION NOT NULL
);
CREATE INDEX sp_quantity_value ON sp_quantity (tenant, pid, canon_unit, canon_lo);
CREATE INDEX sp_quantity_rid ON sp_quantity (rid, pid);

CREATE TABLE sp_reference (
    rid      BIGINT  NOT NULL,
    tenant   BIGINT  NOT NULL,
    pid      INTEGER NOT NULL,
    grp      INTEGER NOT NULL,
    ttype    TEXT    NOT NULL,   -- '' for URLs
    tid      TEXT    NOT NULL,
    tversion TEXT    NOT NULL,
    url      TEXT COLLATE "C" NOT NULL    -- absolute, URN or canonical; '' for local
);
CREATE INDEX sp_reference_value ON sp_reference (tenant, pid, tid, ttype, rid);
CREATE INDEX sp_reference_url ON sp_reference (tenant, pid, url) WHERE url <> '';
CREATE INDEX sp_reference_rid ON sp_reference (rid, pid);

CREATE TABLE sp_uri (
    rid    BIGINT  NOT NULL,
    tenant BIGINT  NOT NULL,
    pid    INTEGER NOT NULL,
    grp    INTEGER NOT NULL,
    uri    TEXT COLLATE "C" NOT NULL
);
CREATE INDEX sp_uri_value ON sp_uri (tenant, pid, uri);
CREATE INDEX sp_uri_rid ON sp_uri (rid, pid);

-- Which definition of the search parameters the index was built with.
CREATE TABLE search_index_state (
    tenant      BIGINT  PRIMARY KEY,
    fingerprint TEXT    NOT NULL
);
