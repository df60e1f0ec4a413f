DROP INDEX IF EXISTS calls_undialled_ended;
DROP INDEX IF EXISTS call_attempts_ended;
DROP INDEX IF EXISTS call_attempts_started;
