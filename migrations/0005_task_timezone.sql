-- The IANA time zone a task's cron schedule is evaluated in (`--timezone`);
-- NULL: the system's zone, resolved when the schedule is read. Intervals
-- have none.
ALTER TABLE tasks ADD COLUMN timezone TEXT;
