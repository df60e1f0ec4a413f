-- An update whose call has no record in the CRM (none, or several
-- different ones, match its phone) is kept, visible, as no_record: not
-- retried, and not a delivery failure.
ALTER TABLE crm_outbox DROP CONSTRAINT crm_outbox_status_check;
ALTER TABLE crm_outbox ADD CONSTRAINT crm_outbox_status_check
    CHECK (status IN ('pending', 'delivered', 'failed', 'no_record'));
