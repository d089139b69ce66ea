-- The value indexes hold the rows searches start from: plain parameters
-- (grp 0) and the first component of composite values (grp n > 0). The
-- later components of a composite value (grp -n) are reached from the
-- first by rid through the primary key, so they are left out: one index
-- entry fewer per later component value (an Observation's value is in
-- code-value-quantity and combo-code-value-quantity). Queries say
-- `grp >= 0` (src/store/query.rs) so that these partial indexes apply.
-- The rows themselves are renumbered by the reindex job that extractor
-- version 4 starts.
DROP INDEX sp_string_value;
CREATE INDEX sp_string_value ON sp_string (tenant, pid, norm, rid) WHERE grp >= 0;
DROP INDEX sp_token_value;
CREATE INDEX sp_token_value ON sp_token (tenant, pid, code, rid, system) WHERE grp >= 0;
DROP INDEX sp_date_value;
CREATE INDEX sp_date_value ON sp_date (tenant, pid, lo, hi) WHERE grp >= 0;
DROP INDEX sp_number_value;
CREATE INDEX sp_number_value ON sp_number (tenant, pid, lo) WHERE grp >= 0;
DROP INDEX sp_quantity_value;
CREATE INDEX sp_quantity_value ON sp_quantity (tenant, pid, canon_unit, canon_lo) WHERE grp >= 0;
DROP INDEX sp_reference_value;
CREATE INDEX sp_reference_value ON sp_reference (tenant, pid, tid, ttype, rid) WHERE grp >= 0;
DROP INDEX sp_reference_url;
CREATE INDEX sp_reference_url ON sp_reference (tenant, pid, url) WHERE url <> '' AND grp >= 0;
DROP INDEX sp_uri_value;
CREATE INDEX sp_uri_value ON sp_uri (tenant, pid, uri) WHERE grp >= 0;
DROP INDEX sp_position_value;
CREATE INDEX sp_position_value ON sp_position (tenant, pid, lat, lon, rid) WHERE grp >= 0;
