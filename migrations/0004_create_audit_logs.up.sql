-- Who changed what and when: integrations, config, secrets (key names,
-- never values), handlers and tokens. Written in the change's transaction.
CREATE TABLE audit_logs (
    id             bigserial PRIMARY KEY,
    integration_id uuid REFERENCES integrations (id) ON DELETE CASCADE,
    owner_id       text NOT NULL,
    actor          text NOT NULL,
    action         text NOT NULL,
    resource       text NOT NULL,
    resource_id    text,
    before         jsonb,
    after          jsonb,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_logs_integration ON audit_logs (integration_id, id DESC);
CREATE INDEX audit_logs_owner ON audit_logs (owner_id, id DESC);
