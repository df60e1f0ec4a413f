ALTER TABLE calls DROP COLUMN held;
DROP TABLE contact_dials;
DROP TABLE dial_buckets;
