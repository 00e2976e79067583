-- +goose Up
-- A feed delta re-examines, for each affected resource, only its findings of the vulnerability IDs
-- the changed advisories reach: with the vulnerability ID in the resource index that is one probe
-- per (resource, ID) pair, where (account, resource_id) alone read every finding row of the
-- resource (a few hundred) to test it. Queries on the resource alone use its prefix as before.
DROP INDEX findings_resource;
CREATE INDEX findings_resource ON findings (account, resource_id, vulnerability_id);

-- +goose Down
DROP INDEX findings_resource;
CREATE INDEX findings_resource ON findings (account, resource_id);
