CREATE TABLE storage_tables (
    project_id TEXT NOT NULL REFERENCES projects(id),
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (project_id, id)
) WITHOUT ROWID;

CREATE TABLE table_versions (
    project_id TEXT NOT NULL,
    table_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    columns TEXT NOT NULL,
    primary_key TEXT NOT NULL,
    segments TEXT NOT NULL,
    rows INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    loaded_rows INTEGER NOT NULL,
    loaded_bytes INTEGER NOT NULL,
    made_by TEXT NOT NULL,
    job_id TEXT,
    note TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (project_id, table_id, version)
) WITHOUT ROWID;

CREATE TABLE files (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id TEXT NOT NULL REFERENCES projects(id),
    name TEXT NOT NULL,
    tags TEXT NOT NULL,
    size INTEGER NOT NULL,
    object_key TEXT NOT NULL,
    job_id TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX files_by_project ON files (project_id, id);

CREATE TABLE file_tags (
    file_id INTEGER NOT NULL REFERENCES files(id),
    tag TEXT NOT NULL,
    PRIMARY KEY (tag, file_id)
) WITHOUT ROWID;
