-- The btrfs filesystem uuid each pool was on when it was added (NULL for pools
-- added before this column: filled at the receiver's first successful check).
-- An unmounted pool leaves its mount point as a plain directory, or another
-- filesystem may be mounted there; a receive must land on neither.
ALTER TABLE pools ADD COLUMN fs_uuid TEXT;
