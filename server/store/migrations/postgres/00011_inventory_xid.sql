-- +goose Up
-- Which transaction last changed a resource's inventory hash or removal, so that a feed pass reads
-- only the resources changed since its previous read (InventoryHashes), not all of them. A
-- sequence would not do: numbers are taken in one order and committed in another, so a reader
-- could pass a number whose transaction commits later. Transaction IDs with the snapshot's xmin
-- as the mark do not have that gap. Rows written before this migration have none and are read by
-- full reads only (every process starts with one).
ALTER TABLE resources ADD COLUMN inventory_xid xid8;
CREATE INDEX resources_inventory_xid ON resources (inventory_xid);

-- +goose StatementBegin
CREATE FUNCTION vigil_resources_inventory_xid() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.inventory_xid := pg_current_xact_id();
    RETURN NEW;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER resources_inventory_xid BEFORE INSERT OR UPDATE OF inventory_hash, removed_at ON resources
    FOR EACH ROW EXECUTE FUNCTION vigil_resources_inventory_xid();

-- +goose Down
DROP TRIGGER resources_inventory_xid ON resources;
DROP FUNCTION vigil_resources_inventory_xid();
DROP INDEX resources_inventory_xid;
ALTER TABLE resources DROP COLUMN inventory_xid;
