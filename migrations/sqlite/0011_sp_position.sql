-- Positions for `near` (Location.position): latitude and longitude in
-- degrees (WGS84) for the bounding-box prefilter, and the point on the unit
-- sphere (x, y, z) so that the exact great-circle test is a dot product
-- (x·x' + y·y' + z·z' >= cos(distance / earth radius)) needing no
-- trigonometric SQL functions. Filled by the reindex job (EXTRACTOR_VERSION 3).
CREATE TABLE sp_position (
    rid    INTEGER NOT NULL,
    tenant INTEGER NOT NULL,
    pid    INTEGER NOT NULL,
    grp    INTEGER NOT NULL,
    lat    REAL    NOT NULL,
    lon    REAL    NOT NULL,
    x      REAL    NOT NULL,
    y      REAL    NOT NULL,
    z      REAL    NOT NULL,
    PRIMARY KEY (rid, pid, grp, lat, lon)
) WITHOUT ROWID;
CREATE INDEX sp_position_value ON sp_position (tenant, pid, lat, lon, rid);
