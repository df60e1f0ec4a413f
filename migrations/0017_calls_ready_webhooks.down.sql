DROP INDEX IF EXISTS calls_ready_webhooks;
