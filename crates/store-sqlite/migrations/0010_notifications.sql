-- Outbound notifications and every delivery attempt.
CREATE TABLE notifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id TEXT NOT NULL,
    subject_kind TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    url TEXT NOT NULL,
    secret TEXT,
    body TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at INTEGER NOT NULL,
    deadline INTEGER NOT NULL,
    last_error TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX notifications_due ON notifications (next_at) WHERE status = 'pending';
CREATE INDEX notifications_by_subject ON notifications (project_id, subject_kind, subject_id);
CREATE TABLE notification_attempts (
    notification_id INTEGER NOT NULL,
    number INTEGER NOT NULL,
    at INTEGER NOT NULL,
    status_code INTEGER,
    error TEXT,
    PRIMARY KEY (notification_id, number)
) WITHOUT ROWID;
