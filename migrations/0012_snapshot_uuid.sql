-- The uuid of the snapshot a send attempt took. It is the record that the
-- snapshot is this task's own: a task deletes only snapshots its rows name,
-- never another task's that merely look alike. Rows from before this column
-- name their snapshot without it; a run adopts such a snapshot by that name
-- once, and records its uuid here.
ALTER TABLE send_history ADD COLUMN snapshot_uuid TEXT;
CREATE INDEX send_history_by_snapshot_uuid ON send_history (snapshot_uuid)
    WHERE snapshot_uuid IS NOT NULL;
