-- The indexes of running jobs by configuration and by concurrency key, and
-- of active jobs by schedule, hold only the jobs that have one: a job
-- without (most jobs of a queue under load) costs no write in them when it
-- is claimed or ends. Lookups compare the column with a value, which
-- implies it is not null, so SQLite still uses them (checked by
-- sqlite_only::the_hold_back_lookups_use_their_indexes).
DROP INDEX jobs_running_config;
CREATE INDEX jobs_running_config ON jobs (project_id, config_id)
    WHERE status = 'running' AND config_id IS NOT NULL;
DROP INDEX jobs_running_key;
CREATE INDEX jobs_running_key ON jobs (project_id, concurrency_key)
    WHERE status = 'running' AND concurrency_key IS NOT NULL;
DROP INDEX jobs_active_by_schedule;
CREATE INDEX jobs_active_by_schedule ON jobs (project_id, schedule_id)
    WHERE status IN ('queued', 'running') AND schedule_id IS NOT NULL;
