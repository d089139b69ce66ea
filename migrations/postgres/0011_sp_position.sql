-- Positions for `near` (Location.position): latitude and longitude in
-- degrees (WGS84) for the bounding-box prefilter, and the point on the unit
-- sphere (x, y, z) so that the exact great-circle test is a dot product
-- (x·x' + y·y' + z·z' >= cos(distance / earth radius)) needing no
-- trigonometric SQL functions. Filled by the reindex job (EXTRACTOR_VERSION 3).
CREATE TABLE sp_position (
    rid    BIGINT  NOT NULL,
    tenant BIGINT  NOT NULL,
    pid    INTEGER NOT NULL,
    grp    INTEGER NOT NULL,
    lat    DOUBLE PRECISION NOT NULL,
    lon    DOUBLE PRECISION NOT NULL,
    x      DOUBLE PRECISION NOT NULL,
    y      DOUBLE PRECISION NOT NULL,
    z      DOUBLE PRECISION NOT NULL
);
CREATE INDEX sp_position_value ON sp_position (tenant, pid, lat, lon, rid);
CREATE INDEX sp_position_rid ON sp_position (rid, pid);
