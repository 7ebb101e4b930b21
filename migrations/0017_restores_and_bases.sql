-- Writable copies of replicas made by `ferry replica restore`: where, from
-- which replica, and the copy's own uuid (a later run of a task on it finds
-- the replica it came from by that uuid's parent).
CREATE TABLE restores (
    id            INTEGER PRIMARY KEY,
    pool          TEXT NOT NULL,
    source        TEXT NOT NULL,
    source_uuid   TEXT NOT NULL,
    share         TEXT NOT NULL,
    snapshot      TEXT NOT NULL,
    received_uuid TEXT NOT NULL,
    path          TEXT NOT NULL,
    uuid          TEXT NOT NULL,
    restored_at   TEXT NOT NULL
);
-- Read-only snapshots of this appliance's own snapshots that a receive made
-- inside a replica directory, with the received_uuid btrfs receive finds a
-- failback's parent by (feature failback-bases). ferry's own by record: only
-- a subvolume of this name and uuid is ever deleted, never a user's.
CREATE TABLE failback_bases (
    id          INTEGER PRIMARY KEY,
    pool        TEXT NOT NULL,
    source_uuid TEXT NOT NULL,
    share       TEXT NOT NULL,
    name        TEXT NOT NULL,
    uuid        TEXT NOT NULL,
    origin      TEXT NOT NULL,
    origin_uuid TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    UNIQUE (pool, source_uuid, share, name)
);
