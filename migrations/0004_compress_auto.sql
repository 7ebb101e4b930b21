-- A task's compression level may follow the bottleneck (the default) or stay
-- where the user pinned it. Tasks made before this default to following it:
-- their level becomes the starting point.
ALTER TABLE tasks ADD COLUMN compress_auto INTEGER NOT NULL DEFAULT 1 CHECK (compress_auto IN (0, 1));
