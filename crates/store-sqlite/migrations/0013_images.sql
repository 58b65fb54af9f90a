-- The image catalogue: registry logins per project (secrets sealed), stacks,
-- code packages, the images each worker's engine holds for Gantry.
CREATE TABLE registry_logins (
    project_id TEXT NOT NULL,
    host TEXT NOT NULL,
    username TEXT NOT NULL,
    secret TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (project_id, host)
) WITHOUT ROWID;
CREATE TABLE stacks (
    name TEXT PRIMARY KEY,
    image TEXT NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE code_packages (
    project_id TEXT NOT NULL,
    name TEXT NOT NULL,
    rev INTEGER NOT NULL,
    object_key TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (project_id, name, rev)
) WITHOUT ROWID;
CREATE TABLE engine_images (
    worker_id TEXT NOT NULL,
    reference TEXT NOT NULL,
    image_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    size INTEGER NOT NULL,
    warm INTEGER NOT NULL DEFAULT 0,
    last_used INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (worker_id, reference)
) WITHOUT ROWID;
CREATE TABLE fleet_warm_images (
    image TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
