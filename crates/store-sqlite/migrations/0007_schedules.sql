-- Schedules, their ticks (one row per fired tick: exactly once), and what started a job.
ALTER TABLE jobs ADD COLUMN trigger TEXT;
ALTER TABLE jobs ADD COLUMN schedule_id TEXT;
CREATE INDEX jobs_active_by_schedule ON jobs (project_id, schedule_id) WHERE status IN ('queued', 'running');
CREATE TABLE schedules (
    project_id TEXT NOT NULL REFERENCES projects(id),
    id TEXT NOT NULL,
    config_id TEXT,
    pipeline_id TEXT,
    doc TEXT NOT NULL,
    paused INTEGER NOT NULL DEFAULT 0,
    next_tick INTEGER,
    last_tick INTEGER,
    runs INTEGER NOT NULL DEFAULT 0,
    max_runs INTEGER,
    overlap TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (project_id, id)
);
CREATE INDEX schedules_due ON schedules (next_tick) WHERE paused = 0 AND next_tick IS NOT NULL;
CREATE INDEX schedules_by_config ON schedules (project_id, config_id);
CREATE TABLE schedule_ticks (
    project_id TEXT NOT NULL,
    schedule_id TEXT NOT NULL,
    tick INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    job_id TEXT,
    note TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (project_id, schedule_id, tick)
) WITHOUT ROWID;
