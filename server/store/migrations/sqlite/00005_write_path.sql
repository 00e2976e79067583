-- +goose Up
-- PostgreSQL's 00005 replaces three per-row foreign-key checks with statement-level cascade
-- triggers; SQLite's checks are in-process index probes and stay. Kept so that both dialects
-- share migration numbers.
SELECT 1;

-- +goose Down
SELECT 1;
