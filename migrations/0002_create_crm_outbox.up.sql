-- The CRM outbox: a call's outcome update is written in the same
-- transaction as the call's final transition, and delivered from here,
-- through the integration's CRM breaker, until it succeeds or fails for
-- good. One update per call and event.
CREATE TABLE crm_outbox (
    id              uuid PRIMARY KEY,
    integration_id  uuid NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    call_id         uuid NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    event           text NOT NULL CHECK (event IN ('call.completed', 'call.failed')),
    payload         jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL,
    locked_until    timestamptz,
    last_error      text,
    created_at      timestamptz NOT NULL,
    delivered_at    timestamptz,
    UNIQUE (call_id, event),
    CHECK ((status = 'delivered') = (delivered_at IS NOT NULL))
);
CREATE INDEX crm_outbox_due ON crm_outbox (next_attempt_at) WHERE status = 'pending';
CREATE INDEX crm_outbox_integration ON crm_outbox (integration_id, status);
