//! IronWorker's codes, tasks and schedules on Postgres (see
//! `gantry_store::IronStore`; the same rows as the SQLite backend's).

use crate::configs::load_config;
use crate::error::{Error, Result};
use crate::jobs::*;
use crate::{serializable, snapshot, PgStore, NOW};
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use gantry_core::{JobId, ProjectId};
use gantry_store::rules::iron_id as new_id;
use gantry_store::{
    Change, IronCode, IronCodeDoc, IronCodeRev, IronSchedule, IronStore, IronTask, IronTaskFilter,
    Job, NewIronSchedule, NewJob,
};
use tokio_postgres::Row;

fn doc<T: serde::de::DeserializeOwned>(s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| Error::Corrupt(e.to_string()))
}

fn to_text<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::Internal(e.to_string()))
}

fn short(id: &str) -> String {
    id.chars().take(64).collect()
}

const CODE_SELECT: &str = "SELECT c.project_id, c.id, c.name, c.created_at, c.updated_at, \
     r.rev, r.id, r.doc, r.created_at FROM iron_codes c \
     JOIN iron_code_revisions r ON r.project_id = c.project_id AND r.code_id = c.id AND r.rev = c.rev";

fn code_from_row(r: &Row) -> Result<IronCode> {
    let id: String = r.try_get(1)?;
    let name: String = r.try_get(2)?;
    Ok(IronCode {
        project: parse(r.try_get(0)?)?,
        latest: IronCodeRev {
            code_id: id.clone(),
            id: r.try_get(6)?,
            name: name.clone(),
            rev: num(r.try_get(5)?)?,
            doc: doc(r.try_get::<_, &str>(7)?)?,
            created_at: r.try_get(8)?,
        },
        id,
        name,
        created_at: r.try_get(3)?,
        updated_at: r.try_get(4)?,
    })
}

async fn load_code(c: &impl GenericClient, project: &ProjectId, id: &str) -> Result<IronCode> {
    match c
        .query_opt(
            &format!("{CODE_SELECT} WHERE c.project_id = $1 AND c.id = $2"),
            &[&project.as_str(), &id],
        )
        .await?
    {
        Some(r) => code_from_row(&r),
        None => Err(Error::NotFound(format!("code {}", short(id)))),
    }
}

const SCHEDULE_COLS: &str =
    "project_id, id, code_id, doc, schedule_id, config_id, cancelled, created_at, updated_at";

fn schedule_from_row(r: &Row) -> Result<IronSchedule> {
    Ok(IronSchedule {
        project: parse(r.try_get(0)?)?,
        id: r.try_get(1)?,
        code_id: r.try_get(2)?,
        doc: doc(r.try_get::<_, &str>(3)?)?,
        schedule_id: parse(r.try_get(4)?)?,
        config_id: parse(r.try_get(5)?)?,
        cancelled: r.try_get(6)?,
        created_at: r.try_get(7)?,
        updated_at: r.try_get(8)?,
    })
}

async fn load_schedule(
    c: &impl GenericClient,
    project: &ProjectId,
    id: &str,
) -> Result<IronSchedule> {
    match c
        .query_opt(
            &format!(
                "SELECT {SCHEDULE_COLS} FROM iron_schedules WHERE project_id = $1 AND id = $2"
            ),
            &[&project.as_str(), &id],
        )
        .await?
    {
        Some(r) => schedule_from_row(&r),
        None => Err(Error::NotFound(format!("schedule {}", short(id)))),
    }
}

/// The Iron fields of a job: its own row, or, for a job an Iron schedule
/// made (through its configuration), the schedule's fields and the code's
/// latest revision. `None`: the job is not an Iron task.
async fn task_of(c: &impl GenericClient, job: &Job) -> Result<Option<IronTask>> {
    let own = c
        .query_opt(
            "SELECT doc FROM iron_tasks WHERE job_id = $1",
            &[&job.id.to_string()],
        )
        .await?;
    if let Some(r) = own {
        return doc(r.try_get::<_, &str>(0)?).map(Some);
    }
    let Some(cfg) = &job.config_id else {
        return Ok(None);
    };
    let sched = c
        .query_opt(
            &format!("SELECT {SCHEDULE_COLS} FROM iron_schedules WHERE project_id = $1 AND config_id = $2"),
            &[&job.project.as_str(), &cfg.as_str()],
        )
        .await?;
    let Some(s) = sched else { return Ok(None) };
    let s = schedule_from_row(&s)?;
    let (code_rev, code_history_id) = match load_code(c, &job.project, &s.code_id).await {
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
impl IronStore for PgStore {
    async fn put_iron_code(
        &self,
        project: &ProjectId,
        name: &str,
        code: &IronCodeDoc,
    ) -> gantry_store::Result<IronCode> {
        let text = to_text(code)?;
        Ok(serializable!(self, |tx| {
            let existing = tx
                .query_opt(
                    "SELECT id, rev FROM iron_codes WHERE project_id = $1 AND name = $2",
                    &[&project.as_str(), &name],
                )
                .await?;
            let (id, rev): (String, i64) = match existing {
                Some(r) => {
                    let (id, rev): (String, i64) = (r.try_get(0)?, r.try_get(1)?);
                    tx.execute(
                        &format!(
                            "UPDATE iron_codes SET rev = $3, updated_at = {NOW} WHERE project_id = $1 AND id = $2"
                        ),
                        &[&project.as_str(), &id, &(rev + 1)],
                    )
                    .await?;
                    (id, rev + 1)
                }
                None => {
                    let id = new_id();
                    tx.execute(
                        &format!(
                            "INSERT INTO iron_codes (project_id, id, name, rev, created_at, updated_at) \
                             VALUES ($1, $2, $3, 1, {NOW}, {NOW})"
                        ),
                        &[&project.as_str(), &id, &name],
                    )
                    .await?;
                    (id, 1)
                }
            };
            tx.execute(
                &format!(
                    "INSERT INTO iron_code_revisions (project_id, code_id, rev, id, doc, created_at) \
                     VALUES ($1, $2, $3, $4, $5, {NOW})"
                ),
                &[&project.as_str(), &id, &rev, &new_id(), &text],
            )
            .await?;
            load_code(&tx, project, &id).await?
        })?)
    }

    async fn list_iron_codes(
        &self,
        project: &ProjectId,
        offset: u64,
        limit: u64,
    ) -> gantry_store::Result<Vec<IronCode>> {
        let c = self.client().await?;
        let rows = c
            .query(
                &format!(
                    "{CODE_SELECT} WHERE c.project_id = $1 ORDER BY c.name LIMIT $2 OFFSET $3"
                ),
                &[&project.as_str(), &(limit as i64), &(offset as i64)],
            )
            .await
            .map_err(Error::from)?;
        Ok(rows.iter().map(code_from_row).collect::<Result<Vec<_>>>()?)
    }

    async fn get_iron_code(&self, project: &ProjectId, id: &str) -> gantry_store::Result<IronCode> {
        let c = self.client().await?;
        Ok(load_code(&c, project, id).await?)
    }

    async fn find_iron_code(
        &self,
        project: &ProjectId,
        name: &str,
    ) -> gantry_store::Result<IronCode> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                &format!("{CODE_SELECT} WHERE c.project_id = $1 AND c.name = $2"),
                &[&project.as_str(), &name],
            )
            .await
            .map_err(Error::from)?;
        match row {
            Some(r) => Ok(code_from_row(&r)?),
            None => Err(Error::NotFound(format!("code '{}'", short(name))).into()),
        }
    }

    async fn iron_code_revisions(
        &self,
        project: &ProjectId,
        id: &str,
        offset: u64,
        limit: u64,
    ) -> gantry_store::Result<Vec<IronCodeRev>> {
        Ok(snapshot!(self, |tx| {
            let code = load_code(&tx, project, id).await?;
            tx.query(
                "SELECT code_id, id, rev, doc, created_at FROM iron_code_revisions \
                 WHERE project_id = $1 AND code_id = $2 ORDER BY rev DESC LIMIT $3 OFFSET $4",
                &[&project.as_str(), &id, &(limit as i64), &(offset as i64)],
            )
            .await?
            .iter()
            .map(|r| {
                Ok(IronCodeRev {
                    code_id: r.try_get(0)?,
                    id: r.try_get(1)?,
                    name: code.name.clone(),
                    rev: num(r.try_get(2)?)?,
                    doc: doc(r.try_get::<_, &str>(3)?)?,
                    created_at: r.try_get(4)?,
                })
            })
            .collect::<Result<Vec<_>>>()?
        })?)
    }

    async fn delete_iron_code(&self, project: &ProjectId, id: &str) -> gantry_store::Result<()> {
        Ok(serializable!(self, |tx| {
            let n = tx
                .execute(
                    "DELETE FROM iron_codes WHERE project_id = $1 AND id = $2",
                    &[&project.as_str(), &id],
                )
                .await?;
            if n == 0 {
                return Err(Error::NotFound(format!("code {}", short(id))));
            }
            tx.execute(
                "DELETE FROM iron_code_revisions WHERE project_id = $1 AND code_id = $2",
                &[&project.as_str(), &id],
            )
            .await?;
        })?)
    }

    async fn queue_iron_tasks(
        &self,
        tasks: Vec<(JobId, NewJob, IronTask)>,
    ) -> gantry_store::Result<()> {
        if tasks.is_empty() {
            return Ok(());
        }
        let mut rows = Vec::with_capacity(tasks.len());
        for (id, job, task) in &tasks {
            rows.push((id, job, &task.code_name, to_text(task)?));
        }
        serializable!(self, |tx| {
            let insert_task = tx
                .prepare_cached(
                    "INSERT INTO iron_tasks (job_id, project_id, code_name, doc) VALUES ($1, $2, $3, $4)",
                )
                .await?;
            for (id, job, code_name, text) in &rows {
                insert_job(&tx, id, job).await?;
                tx.execute(
                    &insert_task,
                    &[&id.to_string(), &job.project.as_str(), code_name, text],
                )
                .await?;
            }
        })?;
        self.announce(Change::Enqueued);
        Ok(())
    }

    async fn get_iron_task(
        &self,
        project: &ProjectId,
        id: JobId,
    ) -> gantry_store::Result<(Job, IronTask)> {
        Ok(snapshot!(self, |tx| {
            let mut job = load_job(&tx, Some(project), id).await?;
            let task = task_of(&tx, &job)
                .await?
                .ok_or_else(|| Error::NotFound(format!("task {id}")))?;
            job.attempts = load_attempts(&tx, id).await?;
            fill_waiting(&tx, &mut job).await?;
            (job, task)
        })?)
    }

    async fn list_iron_tasks(
        &self,
        project: &ProjectId,
        f: &IronTaskFilter,
    ) -> gantry_store::Result<Vec<(Job, IronTask)>> {
        let statuses: Vec<String> = f.statuses.iter().map(|s| s.to_string()).collect();
        Ok(snapshot!(self, |tx| {
            let sql = format!(
                "SELECT {JOB_COLS} FROM jobs WHERE project_id = $1 \
                 AND (id IN (SELECT job_id FROM iron_tasks WHERE project_id = $1 AND ($2::TEXT IS NULL OR code_name = $2)) \
                   OR config_id IN (SELECT config_id FROM iron_schedules WHERE project_id = $1 AND ($2::TEXT IS NULL OR code_name = $2))) \
                 AND (cardinality($3::TEXT[]) = 0 OR status = ANY($3)) \
                 AND ($4::BIGINT IS NULL OR queued_at >= $4) AND ($5::BIGINT IS NULL OR queued_at <= $5) \
                 ORDER BY queued_at DESC, id DESC LIMIT $6 OFFSET $7"
            );
            let rows = tx
                .query(
                    &sql,
                    &[
                        &project.as_str(),
                        &f.code_name,
                        &statuses,
                        &f.from,
                        &f.to,
                        &(f.limit as i64),
                        &(f.offset as i64),
                    ],
                )
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let job = job_from_row(&r)?;
                if let Some(t) = task_of(&tx, &job).await? {
                    out.push((job, t));
                }
            }
            out
        })?)
    }

    async fn set_iron_progress(
        &self,
        project: &ProjectId,
        id: JobId,
        percent: u8,
        msg: Option<String>,
    ) -> gantry_store::Result<()> {
        Ok(serializable!(self, |tx| {
            let job = load_job(&tx, Some(project), id).await?;
            let mut task = task_of(&tx, &job)
                .await?
                .ok_or_else(|| Error::NotFound(format!("task {id}")))?;
            task.percent = Some(percent);
            task.progress_msg = msg.clone();
            tx.execute(
                "INSERT INTO iron_tasks (job_id, project_id, code_name, doc) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (job_id) DO UPDATE SET doc = excluded.doc",
                &[&id.to_string(), &project.as_str(), &task.code_name, &to_text(&task)?],
            )
            .await?;
        })?)
    }

    async fn create_iron_schedule(
        &self,
        project: &ProjectId,
        s: NewIronSchedule,
    ) -> gantry_store::Result<IronSchedule> {
        let (doc_text, spec_text, sched_doc) = (
            to_text(&s.doc)?,
            s.spec.to_string(),
            s.schedule.doc.to_string(),
        );
        Ok(serializable!(self, |tx| {
            let n = tx
                .execute(
                    &format!(
                        "INSERT INTO configs (project_id, id, spec, created_at, updated_at) VALUES ($1, $2, $3, {NOW}, {NOW}) \
                         ON CONFLICT DO NOTHING"
                    ),
                    &[&project.as_str(), &s.config_id.as_str(), &spec_text],
                )
                .await?;
            if n == 0 {
                return Err(Error::Conflict(format!(
                    "configuration {} already exists",
                    s.config_id
                )));
            }
            load_config(&tx, project, &s.config_id).await?;
            let sch = &s.schedule;
            let n = tx
                .execute(
                    &format!(
                        "INSERT INTO schedules (project_id, id, config_id, doc, next_tick, max_runs, overlap, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, {NOW}, {NOW}) ON CONFLICT DO NOTHING"
                    ),
                    &[
                        &project.as_str(),
                        &sch.id.as_str(),
                        &s.config_id.as_str(),
                        &sched_doc,
                        &sch.next_tick,
                        &sch.max_runs.map(|m| m as i64),
                        &sch.overlap.as_str(),
                    ],
                )
                .await?;
            if n == 0 {
                return Err(Error::Conflict(format!(
                    "schedule {} already exists",
                    sch.id
                )));
            }
            tx.execute(
                &format!(
                    "INSERT INTO iron_schedules (project_id, id, code_id, code_name, doc, schedule_id, config_id, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, {NOW}, {NOW})"
                ),
                &[
                    &project.as_str(),
                    &s.id,
                    &s.code_id,
                    &s.doc.code_name,
                    &doc_text,
                    &sch.id.as_str(),
                    &s.config_id.as_str(),
                ],
            )
            .await?;
            load_schedule(&tx, project, &s.id).await?
        })?)
    }

    async fn get_iron_schedule(
        &self,
        project: &ProjectId,
        id: &str,
    ) -> gantry_store::Result<IronSchedule> {
        let c = self.client().await?;
        Ok(load_schedule(&c, project, id).await?)
    }

    async fn list_iron_schedules(
        &self,
        project: &ProjectId,
        offset: u64,
        limit: u64,
    ) -> gantry_store::Result<Vec<IronSchedule>> {
        let c = self.client().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {SCHEDULE_COLS} FROM iron_schedules WHERE project_id = $1 \
                     ORDER BY created_at DESC, id LIMIT $2 OFFSET $3"
                ),
                &[&project.as_str(), &(limit as i64), &(offset as i64)],
            )
            .await
            .map_err(Error::from)?;
        Ok(rows
            .iter()
            .map(schedule_from_row)
            .collect::<Result<Vec<_>>>()?)
    }

    async fn cancel_iron_schedule(
        &self,
        project: &ProjectId,
        id: &str,
    ) -> gantry_store::Result<IronSchedule> {
        Ok(serializable!(self, |tx| {
            let s = load_schedule(&tx, project, id).await?;
            tx.execute(
                &format!(
                    "UPDATE iron_schedules SET cancelled = TRUE, updated_at = {NOW} WHERE project_id = $1 AND id = $2"
                ),
                &[&project.as_str(), &id],
            )
            .await?;
            tx.execute(
                &format!(
                    "UPDATE schedules SET paused = TRUE, next_tick = NULL, updated_at = {NOW} \
                     WHERE project_id = $1 AND id = $2"
                ),
                &[&project.as_str(), &s.schedule_id.as_str()],
            )
            .await?;
            load_schedule(&tx, project, id).await?
        })?)
    }

    async fn iron_schedules_of_code(
        &self,
        project: &ProjectId,
        code_id: &str,
    ) -> gantry_store::Result<Vec<IronSchedule>> {
        let c = self.client().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {SCHEDULE_COLS} FROM iron_schedules WHERE project_id = $1 AND code_id = $2 AND NOT cancelled"
                ),
                &[&project.as_str(), &code_id],
            )
            .await
            .map_err(Error::from)?;
        Ok(rows
            .iter()
            .map(schedule_from_row)
            .collect::<Result<Vec<_>>>()?)
    }
}
