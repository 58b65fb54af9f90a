-- Priority (with aging into eff_priority), concurrency keys, project caps.
ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 1;
ALTER TABLE jobs ADD COLUMN eff_priority INTEGER NOT NULL DEFAULT 1;
ALTER TABLE jobs ADD COLUMN concurrency_key TEXT;
ALTER TABLE jobs ADD COLUMN concurrency_limit INTEGER;
ALTER TABLE projects ADD COLUMN max_running INTEGER;
CREATE INDEX jobs_claim ON jobs (eff_priority DESC, run_after, id) WHERE status = 'queued';
CREATE INDEX jobs_running_config ON jobs (project_id, config_id) WHERE status = 'running';
CREATE INDEX jobs_running_key ON jobs (project_id, concurrency_key) WHERE status = 'running';
