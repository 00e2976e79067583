-- +goose Up
-- server_state holds small named integers the server processes sharing this database coordinate
-- through: when a schedule is next due (compare-and-set, so one process wins each interval) and
-- which vulnerability database version the stored findings reflect.
CREATE TABLE server_state (
    name       TEXT PRIMARY KEY,
    value      BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
-- GET /v1/jobs lists the newest jobs of a kind.
CREATE INDEX jobs_kind ON jobs (kind, id);

-- +goose Down
DROP INDEX jobs_kind;
DROP TABLE server_state;
