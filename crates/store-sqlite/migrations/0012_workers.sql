-- The fleet's workers, and the tags a job asks of its worker (read from its
-- spec, so that no writer of jobs has to know about them).
CREATE TABLE workers (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    version TEXT NOT NULL,
    tags TEXT NOT NULL DEFAULT '[]',
    slots INTEGER NOT NULL,
    state TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    last_seen INTEGER NOT NULL
);
ALTER TABLE jobs ADD COLUMN worker_tags TEXT GENERATED ALWAYS AS (json_extract(spec, '$.worker_tags')) VIRTUAL;
