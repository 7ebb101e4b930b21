-- A task's own bandwidth limit, in bytes per second on the wire; 0: none.
ALTER TABLE tasks ADD COLUMN bwlimit INTEGER NOT NULL DEFAULT 0 CHECK (bwlimit >= 0);
