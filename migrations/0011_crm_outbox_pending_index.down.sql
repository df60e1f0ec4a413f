DROP INDEX IF EXISTS crm_outbox_pending;
