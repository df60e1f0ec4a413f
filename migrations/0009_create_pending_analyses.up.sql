-- LLM analyses waiting to amend a finished call. The post-call completes
-- the call at once with the agent's own analysis and queues the LLM's here
-- in the same transaction, so the shared post-call consumer never waits on
-- one tenant's LLM. Workers lease rows under a fencing token, fairly across
-- integrations; a row leaves the table when its analysis is applied (or has
-- failed, and the agent's analysis stands). The call's CRM update is held
-- until then, so the CRM still gets one update per finished call.
CREATE TABLE pending_analyses (
    call_id        uuid PRIMARY KEY REFERENCES calls (id) ON DELETE CASCADE,
    integration_id uuid NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    attempt        integer NOT NULL CHECK (attempt >= 1),
    tries          integer NOT NULL DEFAULT 0 CHECK (tries >= 0),
    locked_until   timestamptz,
    lease_token    uuid,
    created_at     timestamptz NOT NULL
);
CREATE INDEX pending_analyses_integration ON pending_analyses (integration_id, created_at);
