DROP TABLE caller_numbers;
DROP INDEX contact_dials_caller;
ALTER TABLE call_attempts DROP COLUMN caller_id;
ALTER TABLE calls DROP COLUMN caller_id;
