-- +goose Up
-- Filters on a low-cardinality column alone (status=SUPPRESSED, resourceType=image) need an index led
-- by that column: findings_lowcard leads with the severity rank, so a status or resource type that
-- matches few findings, or none, was a scan of every finding of the account. A page of such a filter
-- reads its matches through one of these and sorts them when they are few, or walks the sort index
-- when they are many (server/store findingPlan).
CREATE INDEX findings_status ON findings (account, status, resource_type, type);
CREATE INDEX findings_rtype ON findings (account, resource_type, type);

-- A package filter is tested in both directions without reading finding_packages rows: from a
-- finding walked in sort order (is one of its packages named so?) and from the package name (which
-- findings?).
DROP INDEX finding_packages_finding;
CREATE INDEX finding_packages_finding ON finding_packages (account, finding_id, name, version);
DROP INDEX finding_packages_name;
CREATE INDEX finding_packages_name ON finding_packages (account, name, version, finding_id);

-- A vulnerability's findings in the default order (severity) are an ordered range of this index, however
-- many resources have the vulnerability.
DROP INDEX findings_vuln;
CREATE INDEX findings_vuln ON findings (account, vulnerability_id, severity_rank, id);

-- +goose Down
DROP INDEX findings_vuln;
CREATE INDEX findings_vuln ON findings (account, vulnerability_id);
DROP INDEX finding_packages_name;
CREATE INDEX finding_packages_name ON finding_packages (account, name, version);
DROP INDEX finding_packages_finding;
CREATE INDEX finding_packages_finding ON finding_packages (account, finding_id);
DROP INDEX findings_rtype;
DROP INDEX findings_status;
