-- Lookup of a resource by id alone (any type): transactions resolve
-- urn:uuid references to resources loaded by earlier Bundles.
CREATE INDEX resources_by_id ON resources (tenant, id);
