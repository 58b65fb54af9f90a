-- Pipelines, their runs and the runs' tasks (advanced from the store).
CREATE TABLE pipelines (
    project_id TEXT NOT NULL REFERENCES projects(id),
    id TEXT NOT NULL,
    doc TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (project_id, id)
);
CREATE TABLE pipeline_configs (
    project_id TEXT NOT NULL,
    config_id TEXT NOT NULL,
    pipeline_id TEXT NOT NULL,
    PRIMARY KEY (project_id, config_id, pipeline_id)
) WITHOUT ROWID;
CREATE TABLE pipeline_runs (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id),
    pipeline_id TEXT NOT NULL,
    status TEXT NOT NULL,
    phase INTEGER NOT NULL DEFAULT 0,
    phases INTEGER NOT NULL,
    warnings INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER
);
CREATE INDEX pipeline_runs_open ON pipeline_runs (id) WHERE status IN ('queued', 'running');
CREATE INDEX pipeline_runs_by_project ON pipeline_runs (project_id, pipeline_id, id);
ALTER TABLE pipeline_runs ADD COLUMN trigger TEXT;
ALTER TABLE pipeline_runs ADD COLUMN schedule_id TEXT;
ALTER TABLE pipeline_runs ADD COLUMN hook_id TEXT;
ALTER TABLE pipeline_runs ADD COLUMN delivery_id TEXT;
CREATE INDEX pipeline_runs_active_by_schedule ON pipeline_runs (project_id, schedule_id) WHERE status IN ('queued', 'running');
CREATE TABLE pipeline_tasks (
    run_id TEXT NOT NULL,
    phase INTEGER NOT NULL,
    task INTEGER NOT NULL,
    config_id TEXT NOT NULL,
    continue_on_failure INTEGER NOT NULL,
    parameters TEXT NOT NULL,
    status TEXT NOT NULL,
    job_id TEXT,
    error TEXT,
    PRIMARY KEY (run_id, phase, task)
) WITHOUT ROWID;
