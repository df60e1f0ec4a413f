DROP TABLE IF EXISTS pending_analyses;
