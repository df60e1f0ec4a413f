DROP INDEX IF EXISTS processed_keys_originate_ref;
