-- When a watchdog of any replica last reached the database, and until when
-- every watchdog releases nothing because none had for a while (an outage,
-- or every replica down): what was held meanwhile is applied first, also by
-- a replica that starts after the outage. Both in the database's own clock.
CREATE TABLE watchdog_heartbeat (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),
    seen_at     timestamptz NOT NULL,
    grace_until timestamptz NOT NULL
);
