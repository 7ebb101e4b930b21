-- Whether a task's version 2 send streams carry extents compressed on disk as
-- they are (`btrfs send --compressed-data`): 'auto' where the share's
-- filesystem compresses, 'yes' always, 'no' never.
ALTER TABLE tasks ADD COLUMN send_compressed TEXT NOT NULL DEFAULT 'auto'
    CHECK (send_compressed IN ('auto', 'yes', 'no'));
