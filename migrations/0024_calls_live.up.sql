-- The calls still under way (or holding a slot), apart from the history.
-- The scrape-time gauges and status ages read them, and the watchdog the
-- calls waiting for their post-call report: without these indexes each of
-- those reads walked every call ever made (2.4 s per scrape and 18–60 ms
-- per watchdog tick beside ten million calls).
CREATE INDEX calls_live ON calls (integration_id, status, updated_at) INCLUDE (slot_taken_at, campaign_id)
    WHERE status IN ('queued', 'initiated', 'in_progress', 'waiting_postcall', 'retry_scheduled') OR slot_taken_at IS NOT NULL;
CREATE INDEX calls_awaiting_postcall ON calls (updated_at) WHERE status = 'waiting_postcall';
