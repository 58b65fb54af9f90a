//! SQLite rows of IronWorker's objects (see `crate::iron`).

use super::{
    collect_rows, fill_waiting, immediate, job_from_row, job_params, load_config, parse,
    SqliteStore, INSERT_JOB, JOB_COLS, NOW,
};
use crate::error::{Error, Result};
use async_trait::async_trait;
use gantry_core::{JobId, ProjectId};
use gantry_store::{
    Change, IronCode, IronCodeDoc, IronCodeRev, IronSchedule, IronStore, IronTask, IronTaskFilter,
    Job, NewIronSchedule, NewJob,
};
use rusqlite::{params, Connection, OptionalExtension, Row};

use gantry_store::rules::iron_id as new_id;

fn doc<T: serde::de::DeserializeOwned>(s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| Error::Corrupt(e.to_string()))
}

fn to_text<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::Internal(e.to_string()))
}

const CODE_SELECT: &str = "SELECT c.project_id, c.id, c.name, c.created_at, c.updated_at, \
     r.rev, r.id, r.doc, r.created_at FROM iron_codes c \
     JOIN iron_code_revisions r ON r.project_id = c.project_id AND r.code_id = c.id AND r.rev = c.rev";

fn code_from_row(r: &Row<'_>) -> Result<IronCode> {
    let id: String = r.get(1)?;
    let name: String = r.get(2)?;
    Ok(IronCode {
        project: parse(r.get(0)?)?,
        latest: IronCodeRev {
            code_id: id.clone(),
            id: r.get(6)?,
            name: name.clone(),
            rev: r.get(5)?,
            doc: doc(&r.get::<_, String>(7)?)?,
            created_at: r.get(8)?,
        },
        id,
        name,
        created_at: r.get(3)?,
        updated_at: r.get(4)?,
    })
}

fn load_code(c: &Connection, project: &ProjectId, id: &str) -> Result<IronCode> {
    c.prepare_cached(&format!(
        "{CODE_SELECT} WHERE c.project_id = ?1 AND c.id = ?2"
    ))?
    .query_row(params![project.as_str(), id], |r| Ok(code_from_row(r)))
    .optional()?
    .ok_or_else(|| Error::NotFound(format!("code {}", id.chars().take(64).collect::<String>())))?
}

const SCHEDULE_COLS: &str =
    "project_id, id, code_id, doc, schedule_id, config_id, cancelled, created_at, updated_at";

fn schedule_from_row(r: &Row<'_>) -> Result<IronSchedule> {
    Ok(IronSchedule {
        project: parse(r.get(0)?)?,
        id: r.get(1)?,
        code_id: r.get(2)?,
        doc: doc(&r.get::<_, String>(3)?)?,
        schedule_id: parse(r.get(4)?)?,
        config_id: parse(r.get(5)?)?,
        cancelled: r.get(6)?,
        created_at: r.get(7)?,
        updated_at: r.get(8)?,
    })
}

fn load_schedule(c: &Connection, project: &ProjectId, id: &str) -> Result<IronSchedule> {
    c.prepare_cached(&format!(
        "SELECT {SCHEDULE_COLS} FROM iron_schedules WHERE project_id = ?1 AND id = ?2"
    ))?
    .query_row(params![project.as_str(), id], |r| Ok(schedule_from_row(r)))
    .optional()?
    .ok_or_else(|| {
        Error::NotFound(format!(
            "schedule {}",
            id.chars().take(64).collect::<String>()
        ))
    })?
}

/// The Iron fields of a job: its own row, or, for a job an Iron schedule
/// made (through its configuration), the schedule's fields and the code's
/// latest revision. `None`: the job is not an Iron task.
fn task_of(c: &Connection, job: &Job) -> Result<Option<IronTask>> {
    let own: Option<String> = c
        .prepare_cached("SELECT doc FROM iron_tasks WHERE job_id = ?1")?
        .query_row([job.id.to_string()], |r| r.get(0))
        .optional()?;
    if let Some(d) = own {
        return doc(&d).map(Some);
    }
    let Some(cfg) = &job.config_id else {
        return Ok(None);
    };
    let sched: Option<IronSchedule> = c
        .prepare_cached(&format!(
            "SELECT {SCHEDULE_COLS} FROM iron_schedules WHERE project_id = ?1 AND config_id = ?2"
        ))?
        .query_row(params![job.project.as_str(), cfg.as_str()], |r| {
            Ok(schedule_from_row(r))
        })
        .optional()?
        .transpose()?;
    let Some(s) = sched else {
        return Ok(None);
    };
    let (code_rev, code_history_id) = match load_code(c, &job.project, &s.code_id) {
        Ok(code) => (code.latest.rev, code.latest.id),
        Err(Error::NotFound(_)) => (0, String::new()),
        Err(e) => return Err(e),
    };
    Ok(Some(IronTask {
        code_id: s.code_id,
        code_name: s.doc.code_name,
        code_rev,
        code_history_id,
        payload: s.doc.payload,
        payload_file: s.doc.payload_file,
        label: s.doc.label,
        cluster: s.doc.cluster,
        priority: s.doc.priority,
        timeout: s.doc.timeout,
        delay: s.doc.delay,
        schedule_id: Some(s.id),
        percent: None,
        progress_msg: None,
    }))
}

#[async_trait]
impl IronStore for SqliteStore {
    async fn put_iron_code(
        &self,
        project: &ProjectId,
        name: &str,
        code: &IronCodeDoc,
    ) -> gantry_store::Result<IronCode> {
        let (project, name, text) = (project.clone(), name.to_owned(), to_text(code)?);
        self.write(move |c| {
            immediate(c, |tx: &Connection| {
                let existing: Option<(String, u32)> = tx
                    .prepare_cached("SELECT id, rev FROM iron_codes WHERE project_id = ?1 AND name = ?2")?
                    .query_row(params![project.as_str(), name], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                let (id, rev) = match existing {
                    Some((id, rev)) => {
                        tx.execute(
                            &format!("UPDATE iron_codes SET rev = ?3, updated_at = {NOW} WHERE project_id = ?1 AND id = ?2"),
                            params![project.as_str(), id, rev + 1],
                        )?;
                        (id, rev + 1)
                    }
                    None => {
                        let id = new_id();
                        tx.execute(
                            &format!(
                                "INSERT INTO iron_codes (project_id, id, name, rev, created_at, updated_at) \
                                 VALUES (?1, ?2, ?3, 1, {NOW}, {NOW})"
                            ),
                            params![project.as_str(), id, name],
                        )?;
                        (id, 1)
                    }
                };
                tx.execute(
                    &format!(
                        "INSERT INTO iron_code_revisions (project_id, code_id, rev, id, doc, created_at) \
                         VALUES (?1, ?2, ?3, ?4, ?5, {NOW})"
                    ),
                    params![project.as_str(), id, rev, new_id(), text],
                )?;
                load_code(tx, &project, &id)
            })
        })
        .await
    }

    async fn list_iron_codes(
        &self,
        project: &ProjectId,
        offset: u64,
        limit: u64,
    ) -> gantry_store::Result<Vec<IronCode>> {
        let project = project.clone();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "{CODE_SELECT} WHERE c.project_id = ?1 ORDER BY c.name LIMIT ?2 OFFSET ?3"
            ))?;
            let rows = stmt.query(params![project.as_str(), limit as i64, offset as i64])?;
            collect_rows(rows, code_from_row)
        })
        .await
    }

    async fn get_iron_code(&self, project: &ProjectId, id: &str) -> gantry_store::Result<IronCode> {
        let (project, id) = (project.clone(), id.to_owned());
        self.read(move |c| load_code(c, &project, &id)).await
    }

    async fn find_iron_code(
        &self,
        project: &ProjectId,
        name: &str,
    ) -> gantry_store::Result<IronCode> {
        let (project, name) = (project.clone(), name.to_owned());
        self.read(move |c| {
            c.prepare_cached(&format!(
                "{CODE_SELECT} WHERE c.project_id = ?1 AND c.name = ?2"
            ))?
            .query_row(params![project.as_str(), name], |r| Ok(code_from_row(r)))
            .optional()?
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "code '{}'",
                    name.chars().take(64).collect::<String>()
                ))
            })?
        })
        .await
    }

    async fn iron_code_revisions(
        &self,
        project: &ProjectId,
        id: &str,
        offset: u64,
        limit: u64,
    ) -> gantry_store::Result<Vec<IronCodeRev>> {
        let (project, id) = (project.clone(), id.to_owned());
        self.read(move |c| {
            let code = load_code(c, &project, &id)?;
            let mut stmt = c.prepare_cached(
                "SELECT code_id, id, rev, doc, created_at FROM iron_code_revisions \
                 WHERE project_id = ?1 AND code_id = ?2 ORDER BY rev DESC LIMIT ?3 OFFSET ?4",
            )?;
            let rows = stmt.query(params![project.as_str(), id, limit as i64, offset as i64])?;
            collect_rows(rows, |r| {
                Ok(IronCodeRev {
                    code_id: r.get(0)?,
                    id: r.get(1)?,
                    name: code.name.clone(),
                    rev: r.get(2)?,
                    doc: doc(&r.get::<_, String>(3)?)?,
                    created_at: r.get(4)?,
                })
            })
        })
        .await
    }

    async fn delete_iron_code(&self, project: &ProjectId, id: &str) -> gantry_store::Result<()> {
        let (project, id) = (project.clone(), id.to_owned());
        self.write(move |c| {
            immediate(c, |tx: &Connection| {
                let n = tx.execute(
                    "DELETE FROM iron_codes WHERE project_id = ?1 AND id = ?2",
                    params![project.as_str(), id],
                )?;
                if n == 0 {
                    return Err(Error::NotFound(format!(
                        "code {}",
                        id.chars().take(64).collect::<String>()
                    )));
                }
                tx.execute(
                    "DELETE FROM iron_code_revisions WHERE project_id = ?1 AND code_id = ?2",
                    params![project.as_str(), id],
                )?;
                Ok(())
            })
        })
        .await
    }

    async fn queue_iron_tasks(
        &self,
        tasks: Vec<(JobId, NewJob, IronTask)>,
    ) -> gantry_store::Result<()> {
        if tasks.is_empty() {
            return Ok(());
        }
        let mut rows = Vec::with_capacity(tasks.len());
        for (id, job, task) in tasks {
            let text = to_text(&task)?;
            rows.push((id, job, task.code_name, text));
        }
        self.write(move |c| {
            immediate(c, |tx: &Connection| {
                let mut insert_job = tx.prepare_cached(INSERT_JOB)?;
                let mut insert_task = tx.prepare_cached(
                    "INSERT INTO iron_tasks (job_id, project_id, code_name, doc) VALUES (?1, ?2, ?3, ?4)",
                )?;
                for (id, job, code_name, text) in &rows {
                    insert_job.execute(job_params(id, job))?;
                    insert_task.execute(params![
                        id.to_string(),
                        job.project.as_str(),
                        code_name,
                        text
                    ])?;
                }
                Ok(())
            })
        })
        .await?;
        self.announce(Change::Enqueued);
        Ok(())
    }

    async fn get_iron_task(
        &self,
        project: &ProjectId,
        id: JobId,
    ) -> gantry_store::Result<(Job, IronTask)> {
        let project = project.clone();
        self.read(move |c| {
            let mut job = super::load_job(c, Some(&project), id)?;
            let task = task_of(c, &job)?.ok_or_else(|| Error::NotFound(format!("task {id}")))?;
            job.attempts = super::load_attempts(c, id)?;
            fill_waiting(c, &mut job)?;
            Ok((job, task))
        })
        .await
    }

    async fn list_iron_tasks(
        &self,
        project: &ProjectId,
        f: &IronTaskFilter,
    ) -> gantry_store::Result<Vec<(Job, IronTask)>> {
        let (project, f) = (project.clone(), f.clone());
        self.read(move |c| {
            let statuses: Vec<String> = f.statuses.iter().map(|s| s.to_string()).collect();
            let statuses = serde_json::to_string(&statuses)
                .map_err(|e| Error::Internal(e.to_string()))?;
            let sql = format!(
                "SELECT {JOB_COLS} FROM jobs WHERE project_id = ?1 \
                 AND (id IN (SELECT job_id FROM iron_tasks WHERE project_id = ?1 AND (?2 IS NULL OR code_name = ?2)) \
                   OR config_id IN (SELECT config_id FROM iron_schedules WHERE project_id = ?1 AND (?2 IS NULL OR code_name = ?2))) \
                 AND (?3 = '[]' OR status IN (SELECT value FROM json_each(?3))) \
                 AND (?4 IS NULL OR queued_at >= ?4) AND (?5 IS NULL OR queued_at <= ?5) \
                 ORDER BY queued_at DESC, id DESC LIMIT ?6 OFFSET ?7"
            );
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query(params![
                project.as_str(),
                f.code_name,
                statuses,
                f.from,
                f.to,
                f.limit as i64,
                f.offset as i64
            ])?;
            let jobs = collect_rows(rows, job_from_row)?;
            let mut out = Vec::with_capacity(jobs.len());
            for job in jobs {
                if let Some(t) = task_of(c, &job)? {
                    out.push((job, t));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn set_iron_progress(
        &self,
        project: &ProjectId,
        id: JobId,
        percent: u8,
        msg: Option<String>,
    ) -> gantry_store::Result<()> {
        let project = project.clone();
        self.write(move |c| {
            immediate(c, |tx: &Connection| {
                let job = super::load_job(tx, Some(&project), id)?;
                let mut task = task_of(tx, &job)?
                    .ok_or_else(|| Error::NotFound(format!("task {id}")))?;
                task.percent = Some(percent);
                task.progress_msg = msg;
                tx.execute(
                    "INSERT INTO iron_tasks (job_id, project_id, code_name, doc) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (job_id) DO UPDATE SET doc = excluded.doc",
                    params![id.to_string(), project.as_str(), task.code_name, to_text(&task)?],
                )?;
                Ok(())
            })
        })
        .await
    }

    async fn create_iron_schedule(
        &self,
        project: &ProjectId,
        s: NewIronSchedule,
    ) -> gantry_store::Result<IronSchedule> {
        let project = project.clone();
        let (doc_text, spec_text, sched_doc) = (
            to_text(&s.doc)?,
            s.spec.to_string(),
            s.schedule.doc.to_string(),
        );
        self.write(move |c| {
            immediate(c, |tx: &Connection| {
                let n = tx.execute(
                    &format!(
                        "INSERT INTO configs (project_id, id, spec, created_at, updated_at) VALUES (?1, ?2, ?3, {NOW}, {NOW}) \
                         ON CONFLICT DO NOTHING"
                    ),
                    params![project.as_str(), s.config_id.as_str(), spec_text],
                )?;
                if n == 0 {
                    return Err(Error::Conflict(format!(
                        "configuration {} already exists",
                        s.config_id
                    )));
                }
                load_config(tx, &project, &s.config_id)?;
                let sch = &s.schedule;
                let n = tx.execute(
                    &format!(
                        "INSERT INTO schedules (project_id, id, config_id, doc, next_tick, max_runs, overlap, created_at, updated_at) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, {NOW}, {NOW}) ON CONFLICT DO NOTHING"
                    ),
                    params![
                        project.as_str(),
                        sch.id.as_str(),
                        s.config_id.as_str(),
                        sched_doc,
                        sch.next_tick,
                        sch.max_runs.map(|m| m as i64),
                        sch.overlap.as_str(),
                    ],
                )?;
                if n == 0 {
                    return Err(Error::Conflict(format!("schedule {} already exists", sch.id)));
                }
                tx.execute(
                    &format!(
                        "INSERT INTO iron_schedules (project_id, id, code_id, code_name, doc, schedule_id, config_id, created_at, updated_at) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, {NOW}, {NOW})"
                    ),
                    params![
                        project.as_str(),
                        s.id,
                        s.code_id,
                        s.doc.code_name,
                        doc_text,
                        sch.id.as_str(),
                        s.config_id.as_str()
                    ],
                )?;
                load_schedule(tx, &project, &s.id)
            })
        })
        .await
    }

    async fn get_iron_schedule(
        &self,
        project: &ProjectId,
        id: &str,
    ) -> gantry_store::Result<IronSchedule> {
        let (project, id) = (project.clone(), id.to_owned());
        self.read(move |c| load_schedule(c, &project, &id)).await
    }

    async fn list_iron_schedules(
        &self,
        project: &ProjectId,
        offset: u64,
        limit: u64,
    ) -> gantry_store::Result<Vec<IronSchedule>> {
        let project = project.clone();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {SCHEDULE_COLS} FROM iron_schedules WHERE project_id = ?1 \
                 ORDER BY created_at DESC, id LIMIT ?2 OFFSET ?3"
            ))?;
            let rows = stmt.query(params![project.as_str(), limit as i64, offset as i64])?;
            collect_rows(rows, schedule_from_row)
        })
        .await
    }

    async fn cancel_iron_schedule(
        &self,
        project: &ProjectId,
        id: &str,
    ) -> gantry_store::Result<IronSchedule> {
        let (project, id) = (project.clone(), id.to_owned());
        self.write(move |c| {
            immediate(c, |tx: &Connection| {
                let s = load_schedule(tx, &project, &id)?;
                tx.execute(
                    &format!(
                        "UPDATE iron_schedules SET cancelled = 1, updated_at = {NOW} WHERE project_id = ?1 AND id = ?2"
                    ),
                    params![project.as_str(), id],
                )?;
                tx.execute(
                    &format!(
                        "UPDATE schedules SET paused = 1, next_tick = NULL, updated_at = {NOW} \
                         WHERE project_id = ?1 AND id = ?2"
                    ),
                    params![project.as_str(), s.schedule_id.as_str()],
                )?;
                load_schedule(tx, &project, &id)
            })
        })
        .await
    }

    async fn iron_schedules_of_code(
        &self,
        project: &ProjectId,
        code_id: &str,
    ) -> gantry_store::Result<Vec<IronSchedule>> {
        let (project, code_id) = (project.clone(), code_id.to_owned());
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {SCHEDULE_COLS} FROM iron_schedules WHERE project_id = ?1 AND code_id = ?2 AND cancelled = 0"
            ))?;
            let rows = stmt.query(params![project.as_str(), code_id])?;
            collect_rows(rows, schedule_from_row)
        })
        .await
    }
}
