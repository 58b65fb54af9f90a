-- Inbound webhooks (secrets sealed) and their deliveries (one per delivery id).
CREATE TABLE hooks (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id),
    config_id TEXT,
    pipeline_id TEXT,
    auth TEXT NOT NULL,
    secret TEXT NOT NULL,
    old_secret TEXT,
    old_until INTEGER,
    max_body INTEGER NOT NULL,
    rate_per_min INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX hooks_by_config ON hooks (project_id, config_id);
CREATE TABLE hook_deliveries (
    hook_id TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    job_id TEXT NOT NULL,
    body BLOB NOT NULL,
    manifest TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (hook_id, delivery_id)
) WITHOUT ROWID;
CREATE INDEX hook_deliveries_by_job ON hook_deliveries (job_id);
