-- +goose Up
-- Webhook sinks managed per account through the API. The signing secret is kept as given: the
-- server needs it to sign every delivery (a hash would not do); it is never returned by the API.
CREATE TABLE webhook_sinks (
    id              TEXT PRIMARY KEY,
    account         TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    url             TEXT NOT NULL,
    secret          TEXT NOT NULL,
    previous_secret TEXT NOT NULL DEFAULT '',
    event_types     TEXT NOT NULL DEFAULT '[]',
    enabled         INTEGER NOT NULL DEFAULT 1,
    disabled_reason TEXT NOT NULL DEFAULT '',
    description     TEXT NOT NULL DEFAULT '',
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX webhook_sinks_account ON webhook_sinks (account, id);

-- Organization settings (Inspector's UpdateOrganizationConfiguration): the scan types enabled
-- for a new member when it is associated.
CREATE TABLE organization_settings (
    organization TEXT PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    auto_enable  TEXT NOT NULL DEFAULT '[]',
    updated_at   BIGINT NOT NULL
);

-- Membership of an organization, apart from association: a disassociated member stays listed
-- (status REMOVED) so that the management account or delegated admin may associate it again,
-- while its accounts.organization is cleared and it acts as a standalone account.
CREATE TABLE organization_members (
    organization TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    account      TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    status       TEXT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (organization, account)
);
CREATE UNIQUE INDEX organization_members_account ON organization_members (account);

-- +goose Down
DROP TABLE organization_members;
DROP TABLE organization_settings;
DROP TABLE webhook_sinks;
