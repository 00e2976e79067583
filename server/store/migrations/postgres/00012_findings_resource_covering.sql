-- +goose Up
-- Every submission reads its resource's open-finding count and oldest observation time
-- (Store.ResourceState); with status and last_observed carried in the resource index the read can
-- stay in the index where the pages are all-visible. last_observed is already a key of
-- findings_sort_last, so an observation was never a HOT update: this adds no index write.
DROP INDEX findings_resource;
CREATE INDEX findings_resource ON findings (account, resource_id, vulnerability_id) INCLUDE (status, last_observed);

-- +goose Down
DROP INDEX findings_resource;
CREATE INDEX findings_resource ON findings (account, resource_id, vulnerability_id);
