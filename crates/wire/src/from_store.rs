//! Views built from the store's records (the server's side of the wire).

use crate::{
    AttemptView, ConcurrencyView, ConfigView, ErrorView, EventView, FileView, JobView,
    NotificationAttemptView, NotificationView, ProjectView, TableView, TokenView, TriggerView,
    VersionView,
};
use gantry_store::{
    Attempt, Config, Event, FileInfo, Job, Project, TableInfo, TableVersion, TokenInfo, Trigger,
    Waiting,
};

use gantry_core::time::rfc3339;

pub fn notification_view(n: gantry_store::NotificationView) -> NotificationView {
    NotificationView {
        url: n.url,
        status: n.status,
        last_error: n.last_error,
        attempts: n
            .attempts
            .into_iter()
            .map(|a| NotificationAttemptView {
                number: a.number,
                at: rfc3339(a.at),
                status_code: a.status_code,
                error: a.error,
            })
            .collect(),
    }
}

pub fn trigger_view(t: &Trigger) -> TriggerView {
    match t {
        Trigger::Schedule { id, tick } => TriggerView::Schedule {
            id: id.to_string(),
            tick: rfc3339(*tick),
        },
        Trigger::Pipeline { run, phase, task } => TriggerView::Pipeline {
            run: run.clone(),
            phase: *phase,
            task: *task,
        },
        Trigger::Webhook { id, delivery } => TriggerView::Webhook {
            id: id.clone(),
            delivery: delivery.clone(),
        },
    }
}

/// A job's reason to wait, as a sentence.
pub fn waiting_text(w: &Waiting) -> String {
    match w {
        Waiting::Delayed { until } => format!("delayed until {}", rfc3339(*until)),
        Waiting::ConfigLock { job, config } => {
            format!("waiting for job {job} of configuration {config}")
        }
        Waiting::ConcurrencyKey {
            key,
            limit,
            running,
        } => {
            let ids: Vec<String> = running.iter().map(|j| j.to_string()).collect();
            format!(
                "waiting: concurrency key '{key}' has {} of {limit} jobs running ({})",
                running.len(),
                ids.join(", ")
            )
        }
        Waiting::ProjectLimit { project, limit } => {
            format!("waiting: project '{project}' runs its max_running of {limit} jobs")
        }
        Waiting::NoWorker { tags } => format!(
            "waiting: no live worker has the tags {} (start one with `gantry worker --tags {}`)",
            tags.join(", "),
            tags.join(",")
        ),
    }
}

impl From<Attempt> for AttemptView {
    fn from(a: Attempt) -> Self {
        Self {
            number: a.number,
            worker: a.worker_id,
            status: a.status.as_str().to_string(),
            error: a.error.map(|e| ErrorView {
                kind: e.kind.as_str().into(),
                message: e.message,
            }),
            exit_code: a.exit_code,
            image_digest: a.image_digest,
            started_at: rfc3339(a.started_at),
            finished_at: a.finished_at.map(rfc3339),
        }
    }
}

impl From<Job> for JobView {
    fn from(j: Job) -> Self {
        Self {
            id: j.id.to_string(),
            project: j.project.to_string(),
            config: j.config_id.map(|c| c.to_string()),
            status: j.status.as_str().into(),
            // Only a failed job carries its error; a retried one shows it on its attempts.
            error: j
                .error
                .filter(|_| j.status.is_terminal())
                .map(|e| ErrorView {
                    kind: e.kind.as_str().into(),
                    message: e.message,
                }),
            exit_code: j.exit_code,
            attempt: j.attempt,
            max_attempts: j.max_attempts,
            worker: j.worker_id,
            image_digest: j.image_digest,
            limits: j.limits,
            cancel_requested: j.cancel_requested,
            queued_at: rfc3339(j.queued_at),
            started_at: j.started_at.map(rfc3339),
            finished_at: j.finished_at.map(rfc3339),
            spec: j.spec,
            attempts: j.attempts.into_iter().map(Into::into).collect(),
            priority: j.priority,
            run_after: rfc3339(j.run_after),
            concurrency: j
                .concurrency
                .map(|(key, limit)| ConcurrencyView { key, limit }),
            waiting: j.waiting.as_ref().map(waiting_text),
            trigger: j.trigger.as_ref().map(trigger_view),
            notifications: Vec::new(),
        }
    }
}

impl From<Event> for EventView {
    fn from(e: Event) -> Self {
        Self {
            seq: e.seq,
            attempt: e.attempt,
            time: rfc3339(e.time),
            stream: e.stream,
            level: e.level.as_str().to_string(),
            message: e.message,
            data: e.data,
        }
    }
}

impl From<Config> for ConfigView {
    fn from(c: Config) -> Self {
        Self {
            id: c.id.to_string(),
            project: c.project.to_string(),
            spec: c.spec,
            version: c.version,
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
        }
    }
}

impl From<TableInfo> for TableView {
    fn from(t: TableInfo) -> Self {
        Self {
            id: t.id.to_string(),
            project: t.project.to_string(),
            columns: t.columns,
            primary_key: t.primary_key,
            version: t.version,
            rows: t.rows,
            bytes: t.bytes,
            created_at: rfc3339(t.created_at),
            updated_at: rfc3339(t.updated_at),
        }
    }
}

impl From<TableVersion> for VersionView {
    fn from(v: TableVersion) -> Self {
        Self {
            version: v.version,
            columns: v.columns,
            primary_key: v.primary_key,
            rows: v.rows,
            bytes: v.bytes,
            loaded_rows: v.loaded_rows,
            loaded_bytes: v.loaded_bytes,
            made_by: v.made_by.as_str().to_string(),
            job: v.job_id.map(|j| j.to_string()),
            note: v.note,
            segments: v.segments.len(),
            created_at: rfc3339(v.created_at),
            metadata: v.metadata,
            pinned: v.pinned,
            compacted: None,
        }
    }
}

impl From<FileInfo> for FileView {
    fn from(f: FileInfo) -> Self {
        Self {
            id: f.id,
            project: f.project.to_string(),
            name: f.name,
            tags: f.tags,
            size: f.size,
            job: f.job_id.map(|j| j.to_string()),
            created_at: rfc3339(f.created_at),
        }
    }
}

/// A project as the API shows it: `import_max_bytes` is the cap in force
/// (the default when none is set), retention the policy in effect.
pub fn project_view(p: Project, default_import_max: u64) -> ProjectView {
    ProjectView {
        id: p.id.to_string(),
        allow: p.allow.iter().map(|l| l.as_str().to_string()).collect(),
        import_max_bytes: p.import_max_bytes.unwrap_or(default_import_max),
        retention: serde_json::to_value(p.retention.effective()).unwrap_or_default(),
        max_running: p.max_running,
        created_at: rfc3339(p.created_at),
    }
}

impl From<TokenInfo> for TokenView {
    fn from(t: TokenInfo) -> Self {
        Self {
            id: t.id,
            project: t.project.to_string(),
            admin: t.admin,
            description: t.description,
            created_at: rfc3339(t.created_at),
            token: None,
        }
    }
}

/// A worker as the fleet sees it.
pub fn worker_view(w: &gantry_store::WorkerInfo) -> crate::WorkerView {
    crate::WorkerView {
        id: w.id.clone(),
        host: w.host.clone(),
        version: w.version.clone(),
        tags: w.tags.clone(),
        slots: w.slots,
        running: w.running,
        state: w.state.as_str().to_string(),
        started_at: rfc3339(w.started_at),
        last_heartbeat: rfc3339(w.last_seen),
    }
}

/// How many upcoming fire times a schedule shows.
const PREVIEW: usize = 5;

/// A schedule with its next [`PREVIEW`] fire times.
pub fn schedule_view(row: gantry_store::ScheduleRow) -> crate::ScheduleView {
    let status = if row.paused {
        "paused"
    } else if row.next_tick.is_none() {
        "ended"
    } else {
        "active"
    };
    let next: Vec<String> = match (
        &row.next_tick,
        gantry_core::schedule::ScheduleDoc::from_value(row.doc.clone()),
    ) {
        (Some(first), Ok((_, s))) => std::iter::once(*first)
            .chain(s.upcoming(*first, PREVIEW - 1))
            .map(rfc3339)
            .collect(),
        _ => Vec::new(),
    };
    let recent = row
        .recent
        .iter()
        .map(|t| crate::TickView {
            tick: rfc3339(t.tick),
            outcome: t.outcome.clone(),
            job: (t.outcome == "job").then(|| t.made.clone()).flatten(),
            run: (t.outcome == "run").then(|| t.made.clone()).flatten(),
            note: t.note.clone(),
        })
        .collect();
    crate::ScheduleView {
        id: row.id.to_string(),
        project: row.project.to_string(),
        config: row.config_id.map(|c| c.to_string()),
        pipeline: row.pipeline_id.map(|p| p.to_string()),
        status: status.into(),
        schedule: row.doc,
        runs: row.runs,
        next_tick: row.next_tick.map(rfc3339),
        last_tick: row.last_tick.map(rfc3339),
        next,
        recent,
        created_at: rfc3339(row.created_at),
        updated_at: rfc3339(row.updated_at),
    }
}

/// A stored pipeline; fails only if its stored document is not a pipeline's.
pub fn pipeline_view(p: gantry_store::PipelineRow) -> serde_json::Result<crate::PipelineView> {
    let phases = match p.doc.get("phases") {
        Some(phases) => serde_json::from_value(phases.clone())?,
        None => Vec::new(),
    };
    Ok(crate::PipelineView {
        id: p.id.to_string(),
        project: p.project.to_string(),
        phases,
        version: p.version,
        created_at: rfc3339(p.created_at),
        updated_at: rfc3339(p.updated_at),
    })
}

pub fn pipeline_run_view(r: gantry_store::PipelineRun) -> crate::PipelineRunView {
    crate::PipelineRunView {
        id: r.id,
        project: r.project.to_string(),
        pipeline: r.pipeline.to_string(),
        status: r.status,
        phase: r.phase,
        phases: r.phases,
        cancel_requested: r.cancel_requested,
        error: r.error,
        tasks: r
            .tasks
            .into_iter()
            .map(|t| crate::RunTaskView {
                phase: t.phase,
                task: t.task,
                config: t.config_id.to_string(),
                continue_on_failure: t.continue_on_failure,
                status: t.status,
                job: t.job_id.map(|j| j.to_string()),
                error: t.error,
            })
            .collect(),
        created_at: rfc3339(r.created_at),
        started_at: r.started_at.map(rfc3339),
        finished_at: r.finished_at.map(rfc3339),
        trigger: r.trigger.as_ref().map(trigger_view),
        notifications: None,
    }
}

/// An inbound webhook as of `now_ms` (an old secret past its time is not
/// mentioned); without its secret.
pub fn hook_view(h: &gantry_store::HookRow, now_ms: i64) -> crate::HookView {
    crate::HookView {
        id: h.id.clone(),
        project: h.project.to_string(),
        config: h.config_id.as_ref().map(|c| c.to_string()),
        pipeline: h.pipeline_id.as_ref().map(|p| p.to_string()),
        url: format!("/v1/hooks/{}", h.id),
        auth: h.auth.clone(),
        max_body: h.max_body,
        rate_limit: h.rate_per_min,
        old_secret_valid_until: h.old_until.filter(|u| *u > now_ms).map(rfc3339),
        created_at: rfc3339(h.created_at),
        secret: None,
    }
}

impl From<gantry_store::RegistryInfo> for crate::RegistryView {
    fn from(r: gantry_store::RegistryInfo) -> Self {
        Self {
            host: r.host,
            username: r.username,
            created_at: rfc3339(r.created_at),
        }
    }
}

impl From<gantry_store::StackRow> for crate::StackView {
    fn from(s: gantry_store::StackRow) -> Self {
        Self {
            name: s.name,
            image: s.image,
            created_at: rfc3339(s.created_at),
        }
    }
}

impl From<gantry_store::PackageRev> for crate::PackageView {
    fn from(p: gantry_store::PackageRev) -> Self {
        Self {
            name: p.name,
            rev: p.rev,
            sha256: p.sha256,
            size: p.size,
            created_at: rfc3339(p.created_at),
        }
    }
}

impl From<gantry_store::EngineImage> for crate::ImageView {
    fn from(i: gantry_store::EngineImage) -> Self {
        Self {
            worker: i.worker_id,
            reference: i.reference,
            image_id: i.image_id,
            kind: i.kind,
            size: i.size,
            warm: i.warm,
            last_used: rfc3339(i.last_used),
            created_at: rfc3339(i.created_at),
        }
    }
}
