-- The longer previews are not brought back: nothing to undo.
SELECT 1;
