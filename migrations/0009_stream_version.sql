-- The send stream version each attempt used: 1, or 2 when both appliances
-- support it (holes, preallocation and compressed extents cross as such).
-- NULL where it is not known: rows from before this column, and attempts that
-- ended before streaming.
ALTER TABLE send_history ADD COLUMN stream_version INTEGER CHECK (stream_version >= 1);
ALTER TABLE receive_history ADD COLUMN stream_version INTEGER CHECK (stream_version >= 1);
