-- IronWorker: codes and their revisions, the Iron fields of tasks (a task
-- is a job), Iron schedules (each stands on a configuration and a schedule
-- of Gantry's).
CREATE TABLE iron_codes (
    project_id TEXT NOT NULL REFERENCES projects(id),
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    rev INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (project_id, id),
    UNIQUE (project_id, name)
);
CREATE TABLE iron_code_revisions (
    project_id TEXT NOT NULL,
    code_id TEXT NOT NULL,
    rev INTEGER NOT NULL,
    id TEXT NOT NULL,
    doc TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (project_id, code_id, rev)
);
CREATE TABLE iron_tasks (
    job_id TEXT PRIMARY KEY REFERENCES jobs(id),
    project_id TEXT NOT NULL,
    code_name TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX iron_tasks_by_code ON iron_tasks (project_id, code_name, job_id);
CREATE TABLE iron_schedules (
    project_id TEXT NOT NULL REFERENCES projects(id),
    id TEXT NOT NULL,
    code_id TEXT NOT NULL,
    code_name TEXT NOT NULL,
    doc TEXT NOT NULL,
    schedule_id TEXT NOT NULL,
    config_id TEXT NOT NULL,
    cancelled INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (project_id, id)
);
CREATE INDEX iron_schedules_by_config ON iron_schedules (project_id, config_id);
