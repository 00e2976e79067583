-- +goose Up
-- The vulnerability database the server processes share when they run on several hosts
-- (docs/server.md, "Several hosts"): the newest bundle one of them published, in chunks, and what
-- it is. The others adopt it in place of their own file.
CREATE TABLE vulndb_published (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    lineage      TEXT NOT NULL,
    version      BIGINT NOT NULL,
    sha256       TEXT NOT NULL,
    size         BIGINT NOT NULL,
    published_at BIGINT NOT NULL,
    publisher    TEXT NOT NULL
);
CREATE TABLE vulndb_chunks (
    seq  INTEGER PRIMARY KEY,
    data BLOB NOT NULL
);

-- +goose Down
DROP TABLE vulndb_chunks;
DROP TABLE vulndb_published;
