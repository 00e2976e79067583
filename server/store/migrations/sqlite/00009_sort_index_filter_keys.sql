-- +goose Up
-- PostgreSQL's 00009 turns the sort indexes' INCLUDE columns into trailing key columns; SQLite's
-- have been key columns since 00007. Kept so that both dialects share migration numbers.
SELECT 1;

-- +goose Down
SELECT 1;
