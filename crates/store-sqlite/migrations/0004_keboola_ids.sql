-- Keboola's Common Interface: a stable numeric project id (KBC_PROJECTID;
-- a rowid is not stable across VACUUM), and the token a job was submitted
-- with (KBC_TOKENID, KBC_TOKENDESC).
ALTER TABLE projects ADD COLUMN number INTEGER;
UPDATE projects SET number = rowid;
CREATE UNIQUE INDEX projects_by_number ON projects (number);
ALTER TABLE jobs ADD COLUMN token_id TEXT;
ALTER TABLE jobs ADD COLUMN token_desc TEXT;
ALTER TABLE table_versions ADD COLUMN metadata TEXT;
