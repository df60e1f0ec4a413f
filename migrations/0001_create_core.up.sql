-- Core schema: tenants, their access tokens, secrets and config, the calls
-- with their attempts and history, and the keys that make intake idempotent.

CREATE TABLE access_tokens (
    id           uuid PRIMARY KEY,
    owner_id     text NOT NULL CHECK (owner_id <> ''),
    name         text NOT NULL DEFAULT '',
    token_hash   bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX access_tokens_owner ON access_tokens (owner_id, created_at);

CREATE TABLE integrations (
    id                     uuid PRIMARY KEY,
    owner_id               text NOT NULL,
    name                   text NOT NULL CHECK (name <> ''),
    slug                   text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    status                 text NOT NULL DEFAULT 'not_configured'
                           CHECK (status IN ('not_configured', 'active', 'paused', 'has_errors', 'failed')),
    webhook_token_enc      bytea NOT NULL,
    agent_prompt           text,
    elevenlabs_agent_id    varchar(255),
    saas_assistant_name    varchar(255),
    phone_number           varchar(50),
    voice_assistant_sip_id varchar(50),
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX integrations_owner_name ON integrations (owner_id, lower(name));
CREATE INDEX integrations_owner_created ON integrations (owner_id, created_at);

CREATE TABLE integration_config (
    integration_id uuid NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    key            text NOT NULL CHECK (key ~ '^[a-z0-9_.-]{1,64}$'),
    value          jsonb NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (integration_id, key)
);

-- Secrets and credentials: AES-256-GCM under CALLQUEUE_SECRET_KEY.
CREATE TABLE secrets (
    id             uuid PRIMARY KEY,
    integration_id uuid NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    kind           text NOT NULL CHECK (kind IN ('secret', 'credential')),
    key            text NOT NULL CHECK (key ~ '^[A-Za-z0-9_.-]{1,128}$'),
    value_enc      bytea NOT NULL,
    value_preview  text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (integration_id, kind, key)
);

CREATE TABLE handlers (
    id             uuid PRIMARY KEY,
    integration_id uuid NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    name           text NOT NULL CHECK (name <> ''),
    default_args   jsonb NOT NULL DEFAULT '{}',
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (integration_id, name)
);

CREATE TABLE calls (
    id                uuid PRIMARY KEY,
    integration_id    uuid NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    phone_number      text NOT NULL CHECK (phone_number <> ''),
    record_id         text,
    status            text NOT NULL CHECK (status IN ('queued', 'initiated', 'in_progress', 'waiting_postcall',
                                                      'completed', 'retry_scheduled', 'failed', 'cancelled')),
    priority          integer NOT NULL DEFAULT 0,
    attempt           integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts      integer NOT NULL CHECK (max_attempts >= 1),
    queued_at         timestamptz NOT NULL,
    next_retry_at     timestamptz,
    -- A call holds a concurrency slot exactly while initiated or in progress.
    slot_taken_at     timestamptz,
    dial_state        text NOT NULL DEFAULT 'none' CHECK (dial_state IN ('none', 'dialing', 'accepted', 'failed')),
    external_call_id  text,
    conversation_id   text,
    duration_secs     double precision,
    outcome           text,
    summary           text,
    dynamic_variables jsonb NOT NULL DEFAULT '{}',
    transcript        jsonb,
    analysis          jsonb,
    call_metadata     jsonb,
    trace_id          text,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    CHECK ((status IN ('initiated', 'in_progress')) = (slot_taken_at IS NOT NULL)),
    CHECK ((status = 'retry_scheduled') = (next_retry_at IS NOT NULL)),
    CHECK (attempt <= max_attempts)
);
CREATE INDEX calls_queue ON calls (integration_id, priority DESC, queued_at, id) WHERE status = 'queued';
CREATE INDEX calls_active ON calls (integration_id, slot_taken_at) WHERE status IN ('initiated', 'in_progress');
CREATE INDEX calls_retry_due ON calls (next_retry_at) WHERE status = 'retry_scheduled';
CREATE INDEX calls_conversation ON calls (conversation_id) WHERE conversation_id IS NOT NULL;
CREATE INDEX calls_integration_created ON calls (integration_id, created_at DESC, id DESC);
CREATE INDEX calls_created ON calls (created_at DESC, id DESC);
CREATE INDEX calls_phone ON calls (integration_id, phone_number, created_at DESC);
CREATE INDEX calls_status_counts ON calls (integration_id, status);

-- One row per dial: the dialler's id for it, so late events of an earlier
-- attempt can be told apart from the current one.
CREATE TABLE call_attempts (
    call_id          uuid NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    attempt          integer NOT NULL CHECK (attempt >= 1),
    integration_id   uuid NOT NULL,
    external_call_id text,
    started_at       timestamptz NOT NULL,
    ended_at         timestamptz,
    outcome          text,
    duration_secs    double precision,
    PRIMARY KEY (call_id, attempt)
);
CREATE UNIQUE INDEX call_attempts_external ON call_attempts (integration_id, external_call_id)
    WHERE external_call_id IS NOT NULL;

-- The full history of a call, oldest first by id.
CREATE TABLE call_events (
    id          bigserial PRIMARY KEY,
    call_id     uuid NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    attempt     integer NOT NULL,
    kind        text NOT NULL,
    from_status text,
    to_status   text,
    detail      jsonb NOT NULL DEFAULT '{}',
    trace_id    text,
    occurred_at timestamptz NOT NULL
);
CREATE INDEX call_events_call ON call_events (call_id, id);

-- Keys of work already done, beyond the JetStream duplicate window: intake
-- idempotency keys (pointing at the call they created) and processed
-- message keys (so a redelivered message changes nothing).
CREATE TABLE processed_keys (
    scope      text NOT NULL,
    key        text NOT NULL,
    ref        text NOT NULL DEFAULT '',
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX processed_keys_expiry ON processed_keys (expires_at);
