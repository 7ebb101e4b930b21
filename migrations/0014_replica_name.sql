-- The name of a task's replica line on the target (`--replica-name`); NULL:
-- the share's directory name, as before this column. Two shares with the same
-- directory name on different pools can go to one target under two names.
ALTER TABLE tasks ADD COLUMN replica_name TEXT;
