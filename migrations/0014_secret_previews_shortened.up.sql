-- Previews written before this version showed five characters of values as
-- short as 12. They cannot be recomputed without the values: they show
-- nothing until the secret is next written.
UPDATE secrets SET value_preview = '…' WHERE value_preview <> '' AND value_preview <> '…';
