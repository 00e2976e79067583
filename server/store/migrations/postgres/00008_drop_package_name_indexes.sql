-- +goose Up
-- Which resources hold a package is answered by the server's in-memory re-evaluation index
-- (server/reeval), rebuilt from the inventories at start; nothing reads these two indexes any more,
-- and every new or changed inventory paid for them (two random index entries per package: a
-- thousand for a new host).
DROP INDEX packages_name;
DROP INDEX packages_source;

-- +goose Down
CREATE INDEX packages_name ON packages (ecosystem, name);
CREATE INDEX packages_source ON packages (ecosystem, source_name) WHERE source_name <> '';
