-- Each replica's ctransid once its receive was committed to disk. A replica
-- whose ctransid later moves past it changed after it was received (made
-- writable and edited, then read-only again): it is no parent any more.
-- NULL for replicas from before this column: recorded at their next check.
ALTER TABLE replicas ADD COLUMN ctransid INTEGER;
