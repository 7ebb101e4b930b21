-- What a send attempt found that the user should know although the run may
-- have succeeded: nested subvolumes btrfs send leaves out, bases skipped
-- because they changed after they were confirmed. A JSON array of sentences;
-- NULL when there were none.
ALTER TABLE send_history ADD COLUMN warnings TEXT CHECK (warnings IS NULL OR json_valid(warnings));
