DROP INDEX IF EXISTS call_attempts_given_up;
