-- +goose Up
-- Times are Unix microseconds (BIGINT) in both dialects so that comparisons, keyset tokens and
-- behaviour are identical on SQLite and PostgreSQL. JSON documents are TEXT for the same reason.

CREATE TABLE organizations (
    id                 TEXT PRIMARY KEY,
    name               TEXT NOT NULL DEFAULT '',
    management_account TEXT NOT NULL,
    delegated_admin    TEXT NOT NULL DEFAULT '',
    created_at         BIGINT NOT NULL
);

CREATE TABLE accounts (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL DEFAULT '',
    organization TEXT NOT NULL DEFAULT '',
    role         TEXT NOT NULL,
    enabled      TEXT NOT NULL DEFAULT '[]',
    created_at   BIGINT NOT NULL
);
CREATE INDEX accounts_organization ON accounts (organization) WHERE organization <> '';

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    account      TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name         TEXT NOT NULL DEFAULT '',
    role         TEXT NOT NULL,
    secret_hash  BLOB NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    expires_at   BIGINT,
    revoked_at   BIGINT
);
CREATE INDEX api_keys_account ON api_keys (account);

CREATE TABLE resources (
    account          TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    id               TEXT NOT NULL,
    type             TEXT NOT NULL,
    name             TEXT NOT NULL DEFAULT '',
    tags             TEXT NOT NULL DEFAULT '{}',
    metadata         TEXT NOT NULL DEFAULT '{}',
    image_repository TEXT NOT NULL DEFAULT '',
    scan_mode        TEXT NOT NULL DEFAULT '',
    inventory_hash   TEXT NOT NULL DEFAULT '',
    last_scanned_at  BIGINT,
    created_at       BIGINT NOT NULL,
    removed_at       BIGINT,
    PRIMARY KEY (account, id)
);
CREATE INDEX resources_type ON resources (account, type, id);

-- resource_tags mirrors resources.tags so that tag filters are plain indexed equality in both dialects.
CREATE TABLE resource_tags (
    account     TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    PRIMARY KEY (account, resource_id, key),
    FOREIGN KEY (account, resource_id) REFERENCES resources (account, id) ON DELETE CASCADE
);
CREATE INDEX resource_tags_kv ON resource_tags (account, key, value);

CREATE TABLE packages (
    seq            INTEGER PRIMARY KEY,
    account        TEXT NOT NULL,
    resource_id    TEXT NOT NULL,
    ecosystem      TEXT NOT NULL,
    name           TEXT NOT NULL,
    version        TEXT NOT NULL,
    source_name    TEXT NOT NULL DEFAULT '',
    source_version TEXT NOT NULL DEFAULT '',
    purl           TEXT NOT NULL DEFAULT '',
    location       TEXT NOT NULL DEFAULT '',
    layer          TEXT NOT NULL DEFAULT '',
    arch           TEXT NOT NULL DEFAULT '',
    extractor      TEXT NOT NULL DEFAULT '',
    FOREIGN KEY (account, resource_id) REFERENCES resources (account, id) ON DELETE CASCADE
);
CREATE INDEX packages_resource ON packages (account, resource_id);
-- The re-evaluation index: which resources hold (ecosystem, name), by binary or by source package.
CREATE INDEX packages_name ON packages (ecosystem, name);
CREATE INDEX packages_source ON packages (ecosystem, source_name) WHERE source_name <> '';

CREATE TABLE findings (
    account           TEXT NOT NULL,
    id                TEXT NOT NULL,
    resource_id       TEXT NOT NULL,
    resource_type     TEXT NOT NULL,
    type              TEXT NOT NULL,
    vulnerability_id  TEXT NOT NULL,
    severity          TEXT NOT NULL,
    severity_rank     INTEGER NOT NULL,
    status            TEXT NOT NULL,
    fix_available     TEXT NOT NULL,
    exploit_available TEXT NOT NULL,
    epss              REAL NOT NULL,
    risk_score        REAL NOT NULL,
    first_observed    BIGINT NOT NULL,
    last_observed     BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    image_repository  TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (account, id),
    FOREIGN KEY (account, resource_id) REFERENCES resources (account, id) ON DELETE CASCADE
);
-- One index per sort key, led by the account: a page is an ordered index range scan.
CREATE INDEX findings_sort_severity ON findings (account, severity_rank, id);
CREATE INDEX findings_sort_updated ON findings (account, updated_at, id);
CREATE INDEX findings_sort_first ON findings (account, first_observed, id);
CREATE INDEX findings_sort_last ON findings (account, last_observed, id);
CREATE INDEX findings_sort_risk ON findings (account, risk_score, id);
CREATE INDEX findings_sort_epss ON findings (account, epss, id);
-- Selective filters.
CREATE INDEX findings_vuln ON findings (account, vulnerability_id);
CREATE INDEX findings_resource ON findings (account, resource_id);
CREATE INDEX findings_repo ON findings (account, image_repository);
-- Every low-cardinality filter column: a covering index for filter-led plans and cheap match probes.
CREATE INDEX findings_lowcard ON findings (account, severity_rank, status, exploit_available, fix_available, resource_type, type);

-- The finding document lives apart from its indexed columns: filters that scan findings read narrow
-- rows, and only the rows of the returned page fetch their document.
CREATE TABLE finding_data (
    account TEXT NOT NULL,
    id      TEXT NOT NULL,
    data    TEXT NOT NULL,
    PRIMARY KEY (account, id),
    FOREIGN KEY (account, id) REFERENCES findings (account, id) ON DELETE CASCADE
);

CREATE TABLE finding_packages (
    account    TEXT NOT NULL,
    finding_id TEXT NOT NULL,
    name       TEXT NOT NULL,
    version    TEXT NOT NULL,
    ecosystem  TEXT NOT NULL DEFAULT '',
    layer      TEXT NOT NULL DEFAULT '',
    FOREIGN KEY (account, finding_id) REFERENCES findings (account, id) ON DELETE CASCADE
);
CREATE INDEX finding_packages_finding ON finding_packages (account, finding_id);
CREATE INDEX finding_packages_name ON finding_packages (account, name, version);
CREATE INDEX finding_packages_version ON finding_packages (account, version);
CREATE INDEX finding_packages_layer ON finding_packages (account, layer);

CREATE TABLE suppression_rules (
    account    TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    id         TEXT NOT NULL,
    name       TEXT NOT NULL DEFAULT '',
    reason     TEXT NOT NULL DEFAULT '',
    filter     TEXT NOT NULL,
    expires_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (account, id)
);

CREATE TABLE coverage (
    account         TEXT NOT NULL,
    resource_id     TEXT NOT NULL,
    scan_type       TEXT NOT NULL,
    resource_type   TEXT NOT NULL,
    status          TEXT NOT NULL,
    reason          TEXT NOT NULL,
    scan_mode       TEXT NOT NULL DEFAULT '',
    last_scanned_at BIGINT,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (account, resource_id, scan_type),
    FOREIGN KEY (account, resource_id) REFERENCES resources (account, id) ON DELETE CASCADE
);
CREATE INDEX coverage_status ON coverage (account, status, reason);
CREATE INDEX coverage_type ON coverage (account, resource_type);

CREATE TABLE audit_log (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    account     TEXT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL DEFAULT '',
    remote_addr TEXT NOT NULL DEFAULT '',
    at          BIGINT NOT NULL,
    detail      TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_account ON audit_log (account, seq);

CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    kind         TEXT NOT NULL,
    account      TEXT NOT NULL DEFAULT '',
    payload      BLOB,
    state        TEXT NOT NULL,
    dedupe_key   TEXT,
    run_at       BIGINT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    worker       TEXT NOT NULL DEFAULT '',
    lease_until  BIGINT,
    last_error   TEXT NOT NULL DEFAULT '',
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
-- A dedupe key is unique only while its job is waiting or running.
CREATE UNIQUE INDEX jobs_dedupe ON jobs (dedupe_key) WHERE dedupe_key IS NOT NULL AND state IN ('pending', 'running');
CREATE INDEX jobs_ready ON jobs (state, run_at, id);
CREATE INDEX jobs_lease ON jobs (state, lease_until);

CREATE TABLE outbox (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        TEXT NOT NULL UNIQUE,
    type            TEXT NOT NULL,
    account         TEXT NOT NULL,
    subject         TEXT NOT NULL DEFAULT '',
    event_time      BIGINT NOT NULL,
    data            TEXT NOT NULL,
    state           TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_until     BIGINT,
    last_error      TEXT NOT NULL DEFAULT '',
    delivered_at    BIGINT
);
CREATE INDEX outbox_ready ON outbox (state, next_attempt_at, seq);
CREATE INDEX outbox_account ON outbox (account, state, seq);

-- +goose Down
DROP TABLE outbox;
DROP TABLE jobs;
DROP TABLE audit_log;
DROP TABLE coverage;
DROP TABLE suppression_rules;
DROP TABLE finding_packages;
DROP TABLE finding_data;
DROP TABLE findings;
DROP TABLE packages;
DROP TABLE resource_tags;
DROP TABLE resources;
DROP TABLE api_keys;
DROP TABLE accounts;
DROP TABLE organizations;
