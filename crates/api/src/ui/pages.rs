//! The dashboard's pages. Thin: read through the store and storage scoped to
//! the session's project (exactly the calls the API makes), shape records
//! for a template, render.

use super::session::{CheckedForm, Session};
use super::{hide_secrets, render, UiError};
use crate::admin_routes::project_id;
use crate::extract::{config_id, job_id};
use crate::job_routes::follow;
use crate::state::AppState;
use crate::storage_routes::{file_id, table_id};
use crate::views::rfc3339;
use crate::ApiError;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use gantry_control::{Source, Submission};
use gantry_core::{ConfigId, JobId, JobStatus, ProjectId, ScheduleId};
use gantry_storage::csvscan::{Dialect, Scanner};
use gantry_storage::{ReadFilter, Sink};
use gantry_store::{Job, JobFilter, Store, Trigger};
use minijinja::context;

/// A template value from anything serializable.
pub(crate) fn ser(x: impl serde::Serialize) -> minijinja::Value {
    minijinja::Value::from(minijinja::value::Serde(x))
}
use serde_json::{json, Value};

const PAGE: usize = 25;
/// At most this many jobs are read to fill one page filtered by configuration
/// (the store filters by status only); the page then offers "older" from where
/// the scan stopped.
const SCAN: usize = 5000;
/// Log lines rendered into a job's page (the live log adds the rest).
const LOG_LINES: usize = 2000;
/// Rows shown in a table version's preview.
const PREVIEW_ROWS: u64 = 20;

fn query(q: &Option<String>) -> Vec<(String, String)> {
    form_urlencoded::parse(q.as_deref().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn param<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// `2026-11-22 04:18:23`, UTC.
pub(crate) fn time(ms: i64) -> String {
    rfc3339(ms)
        .chars()
        .take(19)
        .collect::<String>()
        .replace('T', " ")
}

pub(crate) fn took(from: Option<i64>, to: Option<i64>) -> Option<String> {
    let (a, b) = (from?, to?);
    let d = std::time::Duration::from_millis((b - a).max(0) as u64);
    Some(humantime::format_duration(std::time::Duration::from_secs(d.as_secs())).to_string()).map(
        |s| {
            if d.as_secs() == 0 {
                format!("{}ms", d.as_millis())
            } else {
                s
            }
        },
    )
}

pub(crate) fn job_row(j: &Job) -> Value {
    json!({
        "id": j.id.to_string(),
        "config": j.config_id.as_ref().map(|c| c.to_string()),
        "status": j.status.as_str(),
        "attempt": j.attempt,
        "max_attempts": j.max_attempts,
        "image": j.spec.get("image").and_then(Value::as_str),
        "queued": time(j.queued_at),
        "took": took(j.started_at, j.finished_at),
        "cancel_requested": j.cancel_requested,
        "trigger": trigger_kind(j.trigger.as_ref()),
        "run": match &j.trigger {
            Some(Trigger::Pipeline { run, .. }) => Some(run.clone()),
            _ => None,
        },
        "schedule": j.trigger.as_ref().and_then(Trigger::schedule_id).map(|s| s.to_string()),
    })
}

/// What the jobs page filters on besides the status (which the store filters).
#[derive(Default)]
pub(crate) struct Filter {
    pub config: Option<ConfigId>,
    /// `schedule`, `webhook`, `pipeline` or `direct` (no trigger).
    pub trigger: Option<&'static str>,
    /// A pipeline run's id.
    pub run: Option<String>,
    /// Jobs this schedule made.
    pub schedule: Option<ScheduleId>,
}

/// The trigger kinds the jobs page filters on.
pub(crate) const TRIGGERS: [&str; 4] = ["schedule", "webhook", "pipeline", "direct"];

impl Filter {
    fn is_empty(&self) -> bool {
        self.config.is_none()
            && self.trigger.is_none()
            && self.run.is_none()
            && self.schedule.is_none()
    }

    fn keeps(&self, j: &Job) -> bool {
        if self.config.is_some() && j.config_id != self.config {
            return false;
        }
        if let Some(kind) = self.trigger {
            if trigger_kind(j.trigger.as_ref()) != kind {
                return false;
            }
        }
        if let Some(run) = &self.run {
            match &j.trigger {
                Some(Trigger::Pipeline { run: r, .. }) if r == run => {}
                _ => return false,
            }
        }
        if self.schedule.is_some()
            && j.trigger.as_ref().and_then(Trigger::schedule_id) != self.schedule.as_ref()
        {
            return false;
        }
        true
    }
}

fn trigger_kind(t: Option<&Trigger>) -> &'static str {
    match t {
        None => "direct",
        Some(Trigger::Schedule { .. }) => "schedule",
        Some(Trigger::Webhook { .. }) => "webhook",
        Some(Trigger::Pipeline { .. }) => "pipeline",
    }
}

/// One page of the project's jobs, newest first, optionally of one status
/// and matching a filter; returns the cursor of the next (older) page.
pub(crate) async fn jobs_page(
    store: &dyn Store,
    project: &ProjectId,
    status: Option<JobStatus>,
    filter: &Filter,
    mut before: Option<JobId>,
) -> Result<(Vec<Job>, Option<JobId>), ApiError> {
    if filter.is_empty() {
        let jobs = store
            .list_jobs(
                project,
                &JobFilter {
                    status,
                    limit: PAGE,
                    before,
                },
            )
            .await?;
        let next = (jobs.len() == PAGE)
            .then(|| jobs.last().map(|j| j.id))
            .flatten();
        return Ok((jobs, next));
    };
    let mut found = Vec::new();
    let mut scanned = 0;
    loop {
        let batch = store
            .list_jobs(
                project,
                &JobFilter {
                    status,
                    limit: 200,
                    before,
                },
            )
            .await?;
        let full = batch.len() == 200;
        for j in batch {
            scanned += 1;
            before = Some(j.id);
            if filter.keeps(&j) {
                found.push(j);
                if found.len() == PAGE {
                    return Ok((found, before));
                }
            }
        }
        if !full {
            return Ok((found, None));
        }
        if scanned >= SCAN {
            return Ok((found, before));
        }
    }
}

pub async fn jobs(
    State(s): State<AppState>,
    session: Session,
    RawQuery(q): RawQuery,
) -> Result<Response, UiError> {
    let q = query(&q);
    let status = param(&q, "status")
        .map(str::parse::<JobStatus>)
        .transpose()
        .map_err(ApiError::invalid)?;
    let config = param(&q, "config").map(config_id).transpose()?;
    let trigger =
        match param(&q, "trigger") {
            Some(t) => Some(TRIGGERS.into_iter().find(|k| *k == t).ok_or_else(|| {
                ApiError::invalid("trigger: schedule, webhook, pipeline or direct")
            })?),
            None => None,
        };
    let run = param(&q, "run").map(str::to_string);
    if run.as_ref().is_some_and(|r| r.len() > 100) {
        return Err(ApiError::invalid("run: too long").into());
    }
    let filter = Filter {
        config: config.clone(),
        trigger,
        run: run.clone(),
        schedule: None,
    };
    let before = param(&q, "before")
        .map(|c| c.parse::<JobId>())
        .transpose()
        .map_err(|_| ApiError::invalid("invalid cursor"))?;
    let project = &session.principal.project;
    let (jobs, next) = jobs_page(s.store.as_ref(), project, status, &filter, before).await?;
    let configs: Vec<String> = s
        .store
        .list_configs(project)
        .await?
        .into_iter()
        .map(|c| c.id.to_string())
        .collect();
    let mut next_q = form_urlencoded::Serializer::new(String::new());
    if let Some(st) = status {
        next_q.append_pair("status", st.as_str());
    }
    if let Some(c) = &config {
        next_q.append_pair("config", c.as_str());
    }
    if let Some(t) = trigger {
        next_q.append_pair("trigger", t);
    }
    if let Some(r) = &run {
        next_q.append_pair("run", r);
    }
    let filter_q = next_q.finish();
    let next_url = next.map(|n| {
        let mut u = form_urlencoded::Serializer::new(filter_q.clone());
        u.append_pair("before", &n.to_string());
        format!("/ui/jobs?{}", u.finish())
    });
    render(
        "jobs.html",
        StatusCode::OK,
        context! {
            s => session.ctx(),
            page => ser("jobs"),
            jobs => ser(jobs.iter().map(job_row).collect::<Vec<_>>()),
            statuses => ser(JobStatus::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>()),
            status => ser(status.map(|s| s.as_str())),
            configs => ser(configs),
            config => ser(config.map(|c| c.to_string())),
            triggers => ser(TRIGGERS),
            trigger => ser(trigger),
            run => ser(run),
            // Auto-refresh only the newest page: older pages do not change order.
            refresh_url => ser(before.is_none().then(|| format!("/ui/jobs?{filter_q}"))),
            next_url => ser(next_url),
            first_url => ser(before.map(|_| format!("/ui/jobs?{filter_q}"))),
        },
    )
}

/// Everything this job wrote: table versions and files made by it.
async fn outputs(s: &AppState, project: &ProjectId, id: JobId) -> Result<(Value, Value), ApiError> {
    let mut tables = Vec::new();
    for t in s.store.list_tables(project).await? {
        for v in s.store.table_versions(project, &t.id).await? {
            if v.job_id == Some(id) {
                tables.push(json!({
                    "table": t.id.to_string(), "version": v.version, "rows": v.rows,
                    "loaded_rows": v.loaded_rows,
                }));
            }
        }
    }
    let files: Vec<Value> = s
        .store
        .list_files(project, &[], 10_000)
        .await?
        .into_iter()
        .filter(|f| f.job_id == Some(id))
        .map(|f| json!({"id": f.id, "name": f.name, "size": f.size, "tags": f.tags}))
        .collect();
    Ok((Value::Array(tables), Value::Array(files)))
}

pub(crate) fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

pub async fn job(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    let project = &session.principal.project;
    let job = s.store.get_job(project, job_id(&id)?).await?;
    let events = s.store.list_events(project, job.id, 0, LOG_LINES).await?;
    let after = events.last().map_or(0, |e| e.seq);
    // A longer log of an ended job is not put in the page whole.
    let cut = job.status.is_terminal() && events.len() == LOG_LINES;
    let log: Vec<Value> = events
        .into_iter()
        .map(|e| json!({"stream": e.stream, "message": e.message}))
        .collect();
    let (tables, files) = outputs(&s, project, job.id).await?;
    let attempts: Vec<Value> = job
        .attempts
        .iter()
        .map(|a| {
            json!({
                "number": a.number, "worker": a.worker_id, "status": a.status,
                "error": a.error.as_ref().map(|e| format!("{}: {}", e.kind.as_str(), e.message)),
                "exit_code": a.exit_code, "started": time(a.started_at),
                "finished": a.finished_at.map(time), "took": took(Some(a.started_at), a.finished_at),
            })
        })
        .collect();
    let error = job
        .error
        .as_ref()
        .filter(|_| job.status.is_terminal())
        .map(|e| json!({"kind": e.kind.as_str(), "message": e.message}));
    render(
        "job.html",
        StatusCode::OK,
        context! {
            s => session.ctx(),
            page => ser("jobs"),
            job => ser(job_row(&job)),
            terminal => ser(job.status.is_terminal()),
            error => ser(error),
            exit_code => ser(job.exit_code),
            worker => ser(job.worker_id),
            image_digest => ser(job.image_digest),
            started => ser(job.started_at.map(time)),
            finished => ser(job.finished_at.map(time)),
            attempts => ser(attempts),
            limits => ser(job.limits.as_ref().map(|l| pretty(&serde_json::json!(l)))),
            spec => ser(pretty(&hide_secrets(&job.spec))),
            tables => ser(tables),
            files => ser(files),
            log => ser(log),
            after => ser(after),
            cut => ser(cut),
        },
    )
}

/// The live log for the dashboard: the API's own event stream (same code),
/// authenticated by the session cookie because `EventSource` cannot send an
/// `Authorization` header.
pub async fn job_events(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, UiError> {
    let q = query(&q);
    let after = match param(&q, "after") {
        Some(a) => a
            .parse::<u64>()
            .map_err(|_| ApiError::invalid("after must be a number"))?,
        None => 0,
    };
    let project = session.principal.project;
    let id = job_id(&id)?;
    s.store.get_job(&project, id).await?;
    Ok(follow(s.store.clone(), project, id, after).into_response())
}

pub async fn cancel(
    State(s): State<AppState>,
    Path(id): Path<String>,
    form: CheckedForm,
) -> Result<Response, UiError> {
    let id = job_id(&id)?;
    s.store
        .request_cancel(&form.session.principal.project, id)
        .await?;
    Ok(Redirect::to(&format!("/ui/jobs/{id}")).into_response())
}

/// Submits the job's spec again (its secrets stay sealed), checked against
/// the project's policy as it is now, like a new submission.
pub async fn rerun(
    State(s): State<AppState>,
    Path(id): Path<String>,
    form: CheckedForm,
) -> Result<Response, UiError> {
    let p = form.session.principal;
    let sub = Submission::new(Source::Job(job_id(&id)?)).by(&p);
    let job = s.control().submit(&p.project, sub).await?;
    Ok(Redirect::to(&format!("/ui/jobs/{}", job.id)).into_response())
}

pub async fn configs(State(s): State<AppState>, session: Session) -> Result<Response, UiError> {
    let list: Vec<Value> = s
        .store
        .list_configs(&session.principal.project)
        .await?
        .into_iter()
        .map(|c| {
            json!({"id": c.id.to_string(), "version": c.version, "updated": time(c.updated_at),
                   "image": c.spec.get("image").and_then(Value::as_str)})
        })
        .collect();
    render(
        "configs.html",
        StatusCode::OK,
        context! { s => session.ctx(), page => ser("configs"), configs => ser(list) },
    )
}

pub async fn config(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    let project = &session.principal.project;
    let id = config_id(&id)?;
    let c = s.store.get_config(project, &id).await?;
    let filter = Filter {
        config: Some(id.clone()),
        ..Filter::default()
    };
    let (runs, next) = jobs_page(s.store.as_ref(), project, None, &filter, None).await?;
    render(
        "config.html",
        StatusCode::OK,
        context! {
            s => session.ctx(),
            page => ser("configs"),
            id => ser(c.id.to_string()),
            version => ser(c.version),
            created => ser(time(c.created_at)),
            updated => ser(time(c.updated_at)),
            spec => ser(pretty(&hide_secrets(&c.spec))),
            state => ser(pretty(&hide_secrets(&c.state))),
            runs => ser(runs.iter().map(job_row).collect::<Vec<_>>()),
            more => ser(next.is_some()),
        },
    )
}

pub async fn run_config(
    State(s): State<AppState>,
    Path(id): Path<String>,
    form: CheckedForm,
) -> Result<Response, UiError> {
    let p = form.session.principal;
    let id = config_id(&id)?;
    let sub = Submission::new(Source::Config(id)).by(&p);
    let job = s.control().submit(&p.project, sub).await?;
    Ok(Redirect::to(&format!("/ui/jobs/{}", job.id)).into_response())
}

pub async fn tables(State(s): State<AppState>, session: Session) -> Result<Response, UiError> {
    let list: Vec<Value> = s
        .store
        .list_tables(&session.principal.project)
        .await?
        .into_iter()
        .map(|t| {
            json!({"id": t.id.to_string(), "version": t.version, "rows": t.rows, "bytes": t.bytes,
                   "columns": t.columns.len(), "updated": time(t.updated_at)})
        })
        .collect();
    render(
        "tables.html",
        StatusCode::OK,
        context! { s => session.ctx(), page => ser("tables"), tables => ser(list) },
    )
}

pub async fn table(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    let project = &session.principal.project;
    let id = table_id(&id)?;
    let t = s.store.get_table(project, &id).await?;
    let mut versions: Vec<Value> = s
        .store
        .table_versions(project, &id)
        .await?
        .into_iter()
        .map(|v| {
            json!({"version": v.version, "made_by": v.made_by, "job": v.job_id.map(|j| j.to_string()),
                   "rows": v.rows, "bytes": v.bytes, "loaded_rows": v.loaded_rows, "note": v.note,
                   "created": time(v.created_at)})
        })
        .collect();
    versions.reverse();
    render(
        "table.html",
        StatusCode::OK,
        context! {
            s => session.ctx(),
            page => ser("tables"),
            id => ser(t.id.to_string()),
            current => ser(t.version),
            columns => ser(t.columns),
            primary_key => ser(t.primary_key),
            rows => ser(t.rows),
            versions => ser(versions),
        },
    )
}

/// Collects an export's first bytes; the read stops once it has enough.
struct Collect {
    data: Vec<u8>,
    cap: usize,
}

#[async_trait::async_trait]
impl Sink for Collect {
    async fn write(&mut self, data: Bytes) -> std::io::Result<()> {
        self.data.extend_from_slice(&data);
        if self.data.len() >= self.cap {
            return Err(std::io::Error::other("preview is full"));
        }
        Ok(())
    }
}

pub async fn preview(
    State(s): State<AppState>,
    session: Session,
    Path((id, version)): Path<(String, String)>,
) -> Result<Response, UiError> {
    let project = &session.principal.project;
    let id = table_id(&id)?;
    let version: u64 = version.parse().map_err(|_| {
        ApiError::not_found(format!(
            "version {}",
            version.chars().take(20).collect::<String>()
        ))
    })?;
    let v = s.store.table_version(project, &id, Some(version)).await?;
    let filter = ReadFilter {
        limit: Some(PREVIEW_ROWS),
        ..Default::default()
    };
    let mut sink = Collect {
        data: Vec::new(),
        cap: 256 * 1024,
    };
    let read = s
        .storage
        .read_table(project, &id, Some(version), &filter, &mut sink)
        .await;
    if let Err(e) = read {
        if sink.data.len() < sink.cap {
            return Err(e.into());
        }
    }
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut scanner = Scanner::new(Dialect::default());
    let mut take = |r: gantry_storage::csvscan::Record<'_>, _| -> Result<(), ()> {
        if rows.len() <= PREVIEW_ROWS as usize {
            rows.push(
                r.iter()
                    .map(|f| {
                        let s = String::from_utf8_lossy(f);
                        // A cell longer than this is cut in the preview.
                        if s.chars().count() > 200 {
                            format!("{}…", s.chars().take(200).collect::<String>())
                        } else {
                            s.into_owned()
                        }
                    })
                    .collect(),
            );
        }
        Ok(())
    };
    let _ = scanner.push(&sink.data, &mut take);
    if sink.data.len() < sink.cap {
        let _ = scanner.finish(&mut take);
    }
    let header = if rows.is_empty() {
        v.columns.clone()
    } else {
        rows.remove(0)
    };
    render(
        "preview.html",
        StatusCode::OK,
        context! {
            s => session.ctx(),
            page => ser("tables"),
            id => ser(id.to_string()),
            version => ser(v.version),
            made_by => ser(v.made_by),
            job => ser(v.job_id.map(|j| j.to_string())),
            total => ser(v.rows),
            header => ser(header),
            rows => ser(rows),
        },
    )
}

pub async fn restore(
    State(s): State<AppState>,
    Path(id): Path<String>,
    form: CheckedForm,
) -> Result<Response, UiError> {
    let id = table_id(&id)?;
    let version: u64 = form
        .get("version")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| ApiError::invalid("name the version to restore"))?;
    s.storage
        .restore(&form.session.principal.project, &id, version)
        .await?;
    Ok(Redirect::to(&format!("/ui/tables/{id}")).into_response())
}

pub async fn files(
    State(s): State<AppState>,
    session: Session,
    RawQuery(q): RawQuery,
) -> Result<Response, UiError> {
    let q = query(&q);
    let tags: Vec<String> = q
        .iter()
        .filter(|(k, v)| k == "tag" && !v.is_empty())
        .map(|(_, v)| v.clone())
        .collect();
    let list: Vec<Value> = s
        .store
        .list_files(&session.principal.project, &tags, 200)
        .await?
        .into_iter()
        .map(|f| {
            json!({"id": f.id, "name": f.name, "tags": f.tags, "size": f.size,
                   "job": f.job_id.map(|j| j.to_string()), "created": time(f.created_at)})
        })
        .collect();
    render(
        "files.html",
        StatusCode::OK,
        context! { s => session.ctx(), page => ser("files"), files => ser(list), tag => ser(tags.join(" ")) },
    )
}

pub async fn download(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    let f = s
        .store
        .get_file(&session.principal.project, file_id(&id)?)
        .await?;
    let stream = s
        .storage
        .download(&f.object_key)
        .await?
        .map(|r| r.map_err(std::io::Error::other));
    // Always a download, never rendered in the dashboard's origin.
    let name: String = f
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// Admin pages answer 404 to other tokens, like a page that does not exist.
fn admin_only(session: &Session) -> Result<(), UiError> {
    if session.principal.admin {
        Ok(())
    } else {
        Err(UiError(ApiError::not_found("page")))
    }
}

pub async fn projects(State(s): State<AppState>, session: Session) -> Result<Response, UiError> {
    admin_only(&session)?;
    projects_page(&s, &session, None, StatusCode::OK).await
}

async fn projects_page(
    s: &AppState,
    session: &Session,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, UiError> {
    let list: Vec<Value> = s
        .store
        .list_projects()
        .await?
        .into_iter()
        .map(|p| {
            json!({"id": p.id.to_string(), "created": time(p.created_at),
                   "allow": serde_json::to_value(&p.allow).unwrap_or_default()})
        })
        .collect();
    render(
        "projects.html",
        status,
        context! { s => session.ctx(), page => ser("projects"), projects => ser(list), error => ser(error) },
    )
}

pub async fn create_project(
    State(s): State<AppState>,
    form: CheckedForm,
) -> Result<Response, UiError> {
    admin_only(&form.session)?;
    let id = project_id(form.get("id").unwrap_or_default().trim());
    let result = match id {
        Ok(id) => s
            .store
            .create_project(&id, &[])
            .await
            .map_err(ApiError::from),
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => Ok(Redirect::to("/ui/projects").into_response()),
        Err(e) if e.status.is_client_error() => {
            projects_page(&s, &form.session, Some(e.message), e.status).await
        }
        Err(e) => Err(UiError(e)),
    }
}

pub async fn tokens(State(s): State<AppState>, session: Session) -> Result<Response, UiError> {
    admin_only(&session)?;
    tokens_page(&s, &session, None, None, StatusCode::OK).await
}

async fn tokens_page(
    s: &AppState,
    session: &Session,
    created: Option<Value>,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, UiError> {
    let list: Vec<Value> = s
        .store
        .list_tokens(None)
        .await?
        .into_iter()
        .map(|t| {
            json!({"id": t.id, "project": t.project.to_string(), "admin": t.admin,
                   "description": t.description, "created": time(t.created_at)})
        })
        .collect();
    let projects: Vec<String> = s
        .store
        .list_projects()
        .await?
        .into_iter()
        .map(|p| p.id.to_string())
        .collect();
    render(
        "tokens.html",
        status,
        context! {
            s => session.ctx(), page => ser("tokens"), tokens => ser(list), projects => ser(projects),
            created => ser(created), error => ser(error),
        },
    )
}

/// Creates a token; its secret is shown on this one response only.
pub async fn create_token(
    State(s): State<AppState>,
    form: CheckedForm,
) -> Result<Response, UiError> {
    admin_only(&form.session)?;
    let description = form
        .get("description")
        .unwrap_or_default()
        .trim()
        .to_string();
    let admin = form.get("admin") == Some("on");
    let made = async {
        let project = project_id(form.get("project").unwrap_or_default())?;
        let caller = &form.session.principal;
        Ok::<_, ApiError>(
            s.control()
                .create_token(caller, &project, admin, &description)
                .await?,
        )
    }
    .await;
    match made {
        Ok(t) => {
            let created =
                json!({"id": t.info.id, "project": t.info.project.to_string(), "secret": t.secret});
            tokens_page(&s, &form.session, Some(created), None, StatusCode::CREATED).await
        }
        Err(e) if e.status.is_client_error() => {
            tokens_page(&s, &form.session, None, Some(e.message), e.status).await
        }
        Err(e) => Err(UiError(e)),
    }
}

pub async fn revoke_token(
    State(s): State<AppState>,
    Path(id): Path<String>,
    form: CheckedForm,
) -> Result<Response, UiError> {
    admin_only(&form.session)?;
    let id: gantry_core::TokenId = id
        .parse()
        .map_err(|_| ApiError::not_found("no such token"))?;
    s.store.delete_token(&id).await?;
    Ok(Redirect::to("/ui/tokens").into_response())
}
