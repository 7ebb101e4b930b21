-- The nested subvolumes a send attempt found in its share, as paths relative
-- to the share (a JSON list; NULL: none found, or not looked for). A later run
-- checks whether the directories that held them still stand before it uses
-- that attempt's snapshot as a parent: btrfs send cannot delete a directory
-- that held a nested subvolume, and leaves it behind on the target.
ALTER TABLE send_history ADD COLUMN nested TEXT CHECK (nested IS NULL OR json_valid(nested));
