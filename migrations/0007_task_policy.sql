-- Task policy (issue 14). Retention grids for both sides, as canonical grid
-- text ('24h 7d 4w 12m', or 'none'); tasks made before keep their counts and
-- gain the default target grid, which only ever keeps more. Skip-unchanged
-- is on, as for new tasks. Hooks: NULL follows the config's default, '' is
-- none for this task.
ALTER TABLE tasks ADD COLUMN preserve_source TEXT NOT NULL DEFAULT 'none';
ALTER TABLE tasks ADD COLUMN preserve_target TEXT NOT NULL DEFAULT '24h 7d 4w 12m';
ALTER TABLE tasks ADD COLUMN skip_unchanged INTEGER NOT NULL DEFAULT 1 CHECK (skip_unchanged IN (0, 1));
ALTER TABLE tasks ADD COLUMN pre_snapshot TEXT;
ALTER TABLE tasks ADD COLUMN post_snapshot TEXT;
ALTER TABLE tasks ADD COLUMN on_success TEXT;
ALTER TABLE tasks ADD COLUMN on_failure TEXT;

-- A `skipped` run that found the share unchanged since `snapshot`, which the
-- target held: the replica was known to equal the share at that time.
ALTER TABLE send_history ADD COLUMN unchanged INTEGER NOT NULL DEFAULT 0 CHECK (unchanged IN (0, 1));

-- When the source snapshot of a replica was made (its btrfs otime, from Begin),
-- which places it in the retention grid. NULL from senders that do not say:
-- received_at stands in.
ALTER TABLE replicas ADD COLUMN created_at TEXT;
