-- +goose Up
-- PostgreSQL marks which transaction last changed a resource's inventory (InventoryHashes reads
-- only what changed since a mark). SQLite is written by one process, whose engine sees every
-- inventory, so it reads all of them the few times it needs to: nothing to add here. The
-- migration keeps both dialects' versions in step.
SELECT 1;

-- +goose Down
SELECT 1;
