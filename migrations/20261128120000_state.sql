-- sds-sync state database (owned by crates/store). Applied automatically at start-up.
-- Times are UTC text in one fixed format, 'YYYY-MM-DDTHH:MM:SS.mmmZ', so that they read well in
-- the sqlite3 shell and compare correctly as text.

-- Snapshots: one row per export that was published or held. Ids come from AUTOINCREMENT and are
-- never reused, so a snapshot id seen in a log always means the same files.
-- 'reserved' is a publish in progress: the id is taken before the staging folder is renamed to
-- snapshots/<id>, and the row becomes published/held in the transaction that is the publish
-- point. A reserved row found at open belongs to a crashed publish and is removed with its folder.
CREATE TABLE snapshots (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at   TEXT    NOT NULL,
    status       TEXT    NOT NULL
                 CHECK (status IN ('reserved', 'published', 'held', 'approved', 'superseded')),
    format       TEXT    NOT NULL,
    file_count   INTEGER NOT NULL DEFAULT 0,
    total_rows   INTEGER NOT NULL DEFAULT 0,
    -- The guard's verdict for a held snapshot (JSON), kept after approval for the record.
    guard_json   TEXT,
    -- When it became current: at publish, or at approval for a held one.
    published_at TEXT,
    -- When its folder was removed by pruning; the row stays for history.
    pruned_at    TEXT
);
CREATE INDEX snapshots_by_status ON snapshots (status, id);

CREATE TABLE snapshot_files (
    snapshot_id INTEGER NOT NULL REFERENCES snapshots (id) ON DELETE CASCADE,
    -- Order of the file in its format (as built and as delivered).
    position    INTEGER NOT NULL,
    name        TEXT    NOT NULL,
    rows        INTEGER NOT NULL,
    bytes       INTEGER NOT NULL,
    -- blake3 hex of the file's bytes.
    hash        TEXT    NOT NULL,
    -- The v1 licence file: each destination decides whether to carry it.
    license     INTEGER NOT NULL CHECK (license IN (0, 1)),
    -- Diff against the snapshot that was current when this one was built; NULL when there was
    -- nothing comparable (first snapshot, format change). For delivery summaries (email).
    added       INTEGER,
    removed     INTEGER,
    changed     INTEGER,
    PRIMARY KEY (snapshot_id, name)
);

CREATE TABLE runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    outcome     TEXT NOT NULL
                CHECK (outcome IN ('running', 'unchanged', 'published', 'held', 'failed', 'dry_run')),
    snapshot_id INTEGER REFERENCES snapshots (id),
    error       TEXT,
    -- Per-file counts of the run (JSON, written by the daemon).
    rows_json   TEXT
);
CREATE INDEX runs_by_start ON runs (started_at);

-- Delivery outbox: one job per (snapshot, destination).
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    snapshot_id     INTEGER NOT NULL REFERENCES snapshots (id),
    destination     TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('pending', 'done', 'failed', 'superseded')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT    NOT NULL,
    last_error      TEXT,
    created_at      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL
);
-- A newer snapshot supersedes older undelivered jobs of the same destination: at most one pending
-- job per destination, enforced here so a bug cannot deliver two snapshots out of order.
CREATE UNIQUE INDEX outbox_one_pending_per_destination ON outbox (destination) WHERE status = 'pending';
CREATE INDEX outbox_by_snapshot ON outbox (snapshot_id, status);
