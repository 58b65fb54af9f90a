-- Data lifecycle: a project's cap on the decompressed size of an import
-- and its retention policy (JSON; NULL: the defaults), pinned versions.
ALTER TABLE projects ADD COLUMN import_max_bytes INTEGER;
ALTER TABLE projects ADD COLUMN retention TEXT;
ALTER TABLE table_versions ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;
