-- +goose Up
-- PostgreSQL checks a foreign key once per inserted row, through a query of its own: for a new
-- host's 500 packages and ~230 findings with their documents and package rows that was most of the
-- cost of the INSERTs. The rows below are written only by the store, right after the parent row
-- it checked or wrote itself in the same transaction (packages after locking their resource,
-- documents and package rows after their finding), so these three keys only cascaded deletions.
-- Statement-level triggers now do that, once per DELETE instead of once per row. findings keeps
-- its key to resources: a finding of an unknown resource is refused there. SQLite's checks are
-- in-process index probes and stay.
ALTER TABLE packages DROP CONSTRAINT IF EXISTS packages_account_resource_id_fkey;
ALTER TABLE finding_data DROP CONSTRAINT IF EXISTS finding_data_account_id_fkey;
ALTER TABLE finding_packages DROP CONSTRAINT IF EXISTS finding_packages_account_finding_id_fkey;

-- +goose StatementBegin
CREATE FUNCTION vigil_resources_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM packages p USING deleted_resources r WHERE p.account = r.account AND p.resource_id = r.id;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER resources_cascade AFTER DELETE ON resources REFERENCING OLD TABLE AS deleted_resources
    FOR EACH STATEMENT EXECUTE FUNCTION vigil_resources_deleted();

-- +goose StatementBegin
CREATE FUNCTION vigil_findings_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM finding_data d USING deleted_findings f WHERE d.account = f.account AND d.id = f.id;
    DELETE FROM finding_packages p USING deleted_findings f WHERE p.account = f.account AND p.finding_id = f.id;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER findings_cascade AFTER DELETE ON findings REFERENCING OLD TABLE AS deleted_findings
    FOR EACH STATEMENT EXECUTE FUNCTION vigil_findings_deleted();

-- +goose Down
DROP TRIGGER findings_cascade ON findings;
DROP FUNCTION vigil_findings_deleted();
DROP TRIGGER resources_cascade ON resources;
DROP FUNCTION vigil_resources_deleted();
DELETE FROM finding_packages p WHERE NOT EXISTS (SELECT 1 FROM findings f WHERE f.account = p.account AND f.id = p.finding_id);
DELETE FROM finding_data d WHERE NOT EXISTS (SELECT 1 FROM findings f WHERE f.account = d.account AND f.id = d.id);
DELETE FROM packages p WHERE NOT EXISTS (SELECT 1 FROM resources r WHERE r.account = p.account AND r.id = p.resource_id);
ALTER TABLE finding_packages ADD FOREIGN KEY (account, finding_id) REFERENCES findings (account, id) ON DELETE CASCADE;
ALTER TABLE finding_data ADD FOREIGN KEY (account, id) REFERENCES findings (account, id) ON DELETE CASCADE;
ALTER TABLE packages ADD FOREIGN KEY (account, resource_id) REFERENCES resources (account, id) ON DELETE CASCADE;
