DROP INDEX IF EXISTS calls_awaiting_postcall;
DROP INDEX IF EXISTS calls_live;
