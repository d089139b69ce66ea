-- Search index: one table per parameter type, holding the values of the
-- current version of each live resource (see src/store/index.rs). `pid`
-- names the parameter (a stable hash of resource type and code), `grp`
-- ties the components of a composite parameter together. The values are
-- rebuilt by the reindex job whenever the set of parameters changes
-- (search_index_state). The tables are clustered on their primary key
-- (WITHOUT ROWID), which starts with rid: a resource's rows sit together
-- (replaced on update, read for _include and _sort) without a second index.

DROP TABLE search_token;

CREATE TABLE sp_string (
    rid    INTEGER NOT NULL,
    tenant INTEGER NOT NULL,
    pid    INTEGER NOT NULL,
    grp    INTEGER NOT NULL,
    norm   TEXT    NOT NULL,   -- lower case, no accents
    exact  TEXT    NOT NULL,
    PRIMARY KEY (rid, pid, grp, norm, exact)
) WITHOUT ROWID;
CREATE INDEX sp_string_value ON sp_string (tenant, pid, norm, rid);

CREATE TABLE sp_token (
    rid    INTEGER NOT NULL,
    tenant INTEGER NOT NULL,
    pid    INTEGER NOT NULL,
    grp    INTEGER NOT NULL,
    system TEXT    NOT NULL,   -- '' when the value has no system
    code   TEXT    NOT NULL,
    PRIMARY KEY (rid, pid, grp, code, system)
) WITHOUT ROWID;
CREATE INDEX sp_token_value ON sp_token (tenant, pid, code, rid, system);

CREATE TABLE sp_date (
    rid    INTEGER NOT NULL,
    tenant INTEGER NOT NULL,
    pid    INTEGER NOT NULL,
    grp    INTEGER NOT NULL,
    lo     INTEGER NOT NULL,   -- first microsecond covered
    hi     INTEGER NOT NULL,   -- last microsecond covered
    PRIMARY KEY (rid, pid, grp, lo, hi)
) WITHOUT ROWID;
CREATE INDEX sp_date_value ON sp_date (tenant, pid, lo, hi);

CREATE TABLE sp_number (
    rid    INTEGER NOT NULL,
    tenant INTEGER NOT NULL,
    pid    INTEGER NOT NULL,
    grp    INTEGER NOT NULL,
    lo     REAL    NOT NULL,
    hi     REAL    NOT NULL,
    PRIMARY KEY (rid, pid, grp, lo, hi)
) WITHOUT ROWID;
CREATE INDEX sp_number_value ON sp_number (tenant, pid, lo);

CREATE TABLE sp_quantity (
    rid        INTEGER NOT NULL,
    tenant     INTEGER NOT NULL,
    pid        INTEGER NOT NULL,
    grp        INTEGER NOT NULL,
    system     TEXT    NOT NULL,
    code       TEXT    NOT NULL,
    lo         REAL    NOT NULL,
    hi         REAL    NOT NULL,
    canon_unit TEXT    NOT NULL,   -- '' when the unit is not convertible UCUM
    canon_lo   REAL    NOT NULL,
    canon_hi   REAL    NOT NULL,
    PRIMARY KEY (rid, pid, grp, code, system, lo, hi)
) WITHOUT ROWID;
CREATE INDEX sp_quantity_value ON sp_quantity (tenant, pid, canon_unit, canon_lo);

CREATE TABLE sp_reference (
    rid      INTEGER NOT NULL,
    tenant   INTEGER NOT NULL,
    pid      INTEGER NOT NULL,
    grp      INTEGER NOT NULL,
    ttype    TEXT    NOT NULL,   -- '' for URLs
    tid      TEXT    NOT NULL,
    tversion TEXT    NOT NULL,
    url      TEXT    NOT NULL,   -- absolute, URN or canonical; '' for local
    PRIMARY KEY (rid, pid, grp, tid, ttype, tversion, url)
) WITHOUT ROWID;
CREATE INDEX sp_reference_value ON sp_reference (tenant, pid, tid, ttype, rid);
CREATE INDEX sp_reference_url ON sp_reference (tenant, pid, url) WHERE url <> '';

CREATE TABLE sp_uri (
    rid    INTEGER NOT NULL,
    tenant INTEGER NOT NULL,
    pid    INTEGER NOT NULL,
    grp    INTEGER NOT NULL,
    uri    TEXT    NOT NULL,
    PRIMARY KEY (rid, pid, grp, uri)
) WITHOUT ROWID;
CREATE INDEX sp_uri_value ON sp_uri (tenant, pid, uri);

-- Which definition of the search parameters the index was built with.
CREATE TABLE search_index_state (
    tenant      INTEGER PRIMARY KEY,
    fingerprint TEXT    NOT NULL
);
