-- Verified replicas held by this appliance as a receiver. A row is written only
-- after btrfs receive exited 0, the stream's byte count and blake3 matched the
-- sender's Commit, and the subvolume was read-only with the expected
-- received_uuid. Inventory and the `latest` link come from here alone.
CREATE TABLE replicas (
    id            INTEGER PRIMARY KEY,
    pool          TEXT NOT NULL,
    -- The source appliance's name when it was received (kept as history).
    source        TEXT NOT NULL,
    source_uuid   TEXT NOT NULL,
    share         TEXT NOT NULL,
    snapshot      TEXT NOT NULL,
    received_uuid TEXT NOT NULL,
    stream_bytes  INTEGER NOT NULL,
    received_at   TEXT NOT NULL,
    UNIQUE (pool, source_uuid, share, snapshot)
);
