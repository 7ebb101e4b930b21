-- ferry's first schema. Times are UTC RFC 3339 text with milliseconds
-- ("2026-11-21T05:37:56.123Z"): sortable as text and readable in sqlite3.

-- This appliance. Exactly one row, written by `ferry init`.
CREATE TABLE identity (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    name        TEXT NOT NULL,
    uuid        TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

-- Peers this appliance trusts, pinned by certificate fingerprint.
CREATE TABLE appliances (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    address     TEXT NOT NULL,
    fingerprint TEXT NOT NULL UNIQUE,
    meta_port   INTEGER NOT NULL CHECK (meta_port BETWEEN 1 AND 65535),
    data_port   INTEGER NOT NULL CHECK (data_port BETWEEN 1 AND 65535),
    -- The peer's appliance uuid, learned at its first authenticated contact.
    uuid        TEXT UNIQUE,
    created_at  TEXT NOT NULL
);

-- Local btrfs filesystems (or subvolumes) that accept replicas from peers.
CREATE TABLE pools (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    path        TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL
);

-- Replication tasks: one share, one target appliance and pool, one schedule.
CREATE TABLE tasks (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    share        TEXT NOT NULL,
    target_id    INTEGER NOT NULL REFERENCES appliances (id) ON DELETE RESTRICT,
    pool         TEXT NOT NULL,
    frequency    TEXT NOT NULL,
    meta_port    INTEGER CHECK (meta_port BETWEEN 1 AND 65535),
    data_port    INTEGER CHECK (data_port BETWEEN 1 AND 65535),
    keep_source  INTEGER NOT NULL CHECK (keep_source >= 1),
    keep_target  INTEGER NOT NULL CHECK (keep_target >= 1),
    snapshot_dir TEXT NOT NULL,
    compress     INTEGER NOT NULL CHECK (compress BETWEEN 0 AND 19),
    enabled      INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);

-- One row per send attempt. Names are copied in so the history outlives the
-- task and the appliance it names.
CREATE TABLE send_history (
    id            INTEGER PRIMARY KEY,
    task_id       INTEGER REFERENCES tasks (id) ON DELETE SET NULL,
    task          TEXT NOT NULL,
    target        TEXT NOT NULL,
    share         TEXT NOT NULL,
    snapshot      TEXT,
    parent        TEXT,
    kind          TEXT CHECK (kind IN ('full', 'incremental')),
    status        TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'skipped')),
    error         TEXT,
    started_at    TEXT NOT NULL,
    ended_at      TEXT,
    stream_bytes  INTEGER NOT NULL DEFAULT 0,
    wire_bytes    INTEGER NOT NULL DEFAULT 0,
    received_uuid TEXT
);
CREATE INDEX send_history_by_task ON send_history (task, id);
CREATE INDEX send_history_running ON send_history (status) WHERE status = 'running';

-- One row per receive attempt on this appliance.
CREATE TABLE receive_history (
    id            INTEGER PRIMARY KEY,
    source        TEXT NOT NULL,
    source_uuid   TEXT,
    share         TEXT NOT NULL,
    pool          TEXT NOT NULL,
    snapshot      TEXT NOT NULL,
    parent        TEXT,
    kind          TEXT CHECK (kind IN ('full', 'incremental')),
    status        TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'skipped')),
    error         TEXT,
    started_at    TEXT NOT NULL,
    ended_at      TEXT,
    stream_bytes  INTEGER NOT NULL DEFAULT 0,
    wire_bytes    INTEGER NOT NULL DEFAULT 0,
    received_uuid TEXT
);
CREATE INDEX receive_history_by_source ON receive_history (source, id);
CREATE INDEX receive_history_running ON receive_history (status) WHERE status = 'running';
