-- Campaigns (many recipients dialled as ordinary calls under one schedule),
-- the fair-share state of each integration's dispatch lanes, suppressed
-- numbers, and what calls need for recipient time zones and calling windows.

CREATE TABLE campaigns (
    id                uuid PRIMARY KEY,
    integration_id    uuid NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    name              text NOT NULL CHECK (name <> '' AND length(name) <= 200),
    status            text NOT NULL CHECK (status IN ('scheduled', 'running', 'paused', 'completed', 'cancelled')),
    -- NULL: the campaign may use every slot of its integration.
    concurrency_limit integer CHECK (concurrency_limit BETWEEN 1 AND 1000),
    priority          integer NOT NULL DEFAULT 5 CHECK (priority BETWEEN 1 AND 10),
    start_at          timestamptz,
    -- Overlay on the integration's call_handling: {"retry_policy", "max_attempts", "calling_window"}, each optional.
    call_handling     jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(call_handling) = 'object'),
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL
);
CREATE INDEX campaigns_integration ON campaigns (integration_id, created_at DESC, id DESC);
CREATE INDEX campaigns_live ON campaigns (status) WHERE status IN ('scheduled', 'running');

ALTER TABLE calls
    ADD COLUMN campaign_id uuid REFERENCES campaigns (id) ON DELETE CASCADE,
    ADD COLUMN external_id text CHECK (external_id IS NULL OR campaign_id IS NOT NULL),
    -- The recipient's IANA zone, when given at originate or upload.
    ADD COLUMN timezone    text,
    -- Set while a queued call waits for its calling window to open: claims
    -- skip it, and the scheduler clears it when that time comes.
    ADD COLUMN not_before  timestamptz CHECK (not_before IS NULL OR status = 'queued');

-- Claims read the ready queue of one lane (a campaign, or webhook calls).
CREATE INDEX calls_ready ON calls (integration_id, campaign_id, priority DESC, queued_at, id)
    WHERE status = 'queued' AND not_before IS NULL;
-- The scheduler finds the calls whose window has opened.
CREATE INDEX calls_window_wait ON calls (not_before) WHERE status = 'queued' AND not_before IS NOT NULL;
CREATE INDEX calls_campaign_status ON calls (campaign_id, status) WHERE campaign_id IS NOT NULL;
-- A recipient is in a campaign once: by its external id, else by its number.
CREATE UNIQUE INDEX calls_campaign_external ON calls (campaign_id, external_id)
    WHERE campaign_id IS NOT NULL AND external_id IS NOT NULL;
CREATE UNIQUE INDEX calls_campaign_phone ON calls (campaign_id, phone_number)
    WHERE campaign_id IS NOT NULL AND external_id IS NULL;

-- Weighted round robin between an integration's lanes: each slot given to
-- a lane advances its pass by 1/priority; the lane with the lowest pass
-- goes next. lane is a campaign's id or the nil uuid (webhook calls).
CREATE TABLE dispatch_lanes (
    integration_id uuid NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    lane           uuid NOT NULL,
    pass           double precision NOT NULL DEFAULT 0,
    PRIMARY KEY (integration_id, lane)
);

-- Numbers that must not be dialled: of one integration, or (integration_id
-- NULL) of every integration of the owner.
CREATE TABLE suppressions (
    id             uuid PRIMARY KEY,
    owner_id       text NOT NULL CHECK (owner_id <> ''),
    integration_id uuid REFERENCES integrations (id) ON DELETE CASCADE,
    phone_number   text NOT NULL CHECK (phone_number ~ '^\+[0-9]{2,15}$'),
    reason         text NOT NULL CHECK (length(reason) BETWEEN 1 AND 200),
    expires_at     timestamptz,
    created_at     timestamptz NOT NULL,
    UNIQUE NULLS NOT DISTINCT (owner_id, integration_id, phone_number)
);
CREATE INDEX suppressions_phone ON suppressions (phone_number);
