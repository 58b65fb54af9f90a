CREATE TABLE projects (
    id TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL
);
INSERT INTO projects (id, created_at) VALUES ('default', CAST(unixepoch('subsec') * 1000 AS INTEGER));

CREATE TABLE tokens (
    hash TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id),
    admin INTEGER NOT NULL,
    description TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE configs (
    project_id TEXT NOT NULL REFERENCES projects(id),
    id TEXT NOT NULL,
    spec TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT '{}',
    version INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (project_id, id)
);

CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id),
    config_id TEXT,
    status TEXT NOT NULL,
    spec TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    backoff_ms INTEGER NOT NULL,
    run_after INTEGER NOT NULL,
    worker_id TEXT,
    lease_expires INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    error_kind TEXT,
    error_message TEXT,
    exit_code INTEGER,
    image_digest TEXT,
    limits TEXT,
    event_seq INTEGER NOT NULL DEFAULT 0,
    queued_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER
);
CREATE INDEX jobs_due ON jobs (run_after, id) WHERE status = 'queued';
CREATE INDEX jobs_leases ON jobs (lease_expires) WHERE status = 'running';
CREATE INDEX jobs_by_worker ON jobs (worker_id) WHERE status = 'running';
CREATE INDEX jobs_by_project ON jobs (project_id, id);

CREATE TABLE attempts (
    job_id TEXT NOT NULL REFERENCES jobs(id),
    number INTEGER NOT NULL,
    worker_id TEXT NOT NULL,
    status TEXT NOT NULL,
    error_kind TEXT,
    error_message TEXT,
    exit_code INTEGER,
    image_digest TEXT,
    started_at INTEGER NOT NULL,
    finished_at INTEGER,
    PRIMARY KEY (job_id, number)
) WITHOUT ROWID;

CREATE TABLE events (
    job_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    time INTEGER NOT NULL,
    stream TEXT NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL,
    data TEXT,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
