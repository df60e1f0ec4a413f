-- Call events that name a call by the dialler's id before that id is
-- known to us (the dialler's events overtook its own answer to the
-- originate request). They are applied when the id is recorded.
CREATE TABLE parked_events (
    integration_id   uuid NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    external_call_id text NOT NULL,
    seq              bigserial,
    event            jsonb NOT NULL,
    parked_at        timestamptz NOT NULL,
    PRIMARY KEY (integration_id, external_call_id, seq)
);
CREATE INDEX parked_events_age ON parked_events (parked_at);
