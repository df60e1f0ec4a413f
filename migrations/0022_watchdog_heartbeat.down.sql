DROP TABLE IF EXISTS watchdog_heartbeat;
