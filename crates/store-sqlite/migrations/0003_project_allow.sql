ALTER TABLE projects ADD COLUMN allow TEXT NOT NULL DEFAULT '[]';
CREATE INDEX tokens_by_project ON tokens (project_id);
