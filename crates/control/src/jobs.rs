//! Submitting jobs: the one way a job enters the queue, whoever asks (the
//! API, a batch, the dashboard's run and re-run buttons, a schedule's tick,
//! a webhook delivery). Each submission's spec is validated, checked against
//! its project's policy as it is now, sealed, and given its timing.

use crate::Control;
use gantry_core::spec::RunMode;
use gantry_core::{ConfigId, JobId, ProjectId, Spec, SpecError};
use gantry_store::{Job, NewJob, Principal, StoreError, Trigger};
use gantry_vault::Vault;
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Why a submission was refused.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The submission itself is malformed (its timing, a batch's size).
    #[error("{0}")]
    Invalid(String),
    /// The spec is invalid, or loosens a default its project does not allow.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The configuration or job it names is not there, or the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// One job of a batch was refused: none of the batch is queued.
    #[error("jobs[{index}]: {error}")]
    InBatch {
        index: usize,
        error: Box<SubmitError>,
    },
}

/// Where a job's spec comes from.
#[derive(Clone, Debug)]
pub enum Source {
    /// A spec sent inline (as JSON; validated here).
    Spec(Value),
    /// A configuration's spec (the job belongs to the configuration).
    Config(ConfigId),
    /// Another job's spec, submitted again (a re-run).
    Job(JobId),
}

/// When a job may start and how urgent it is.
#[derive(Clone, Debug, Default)]
pub struct Timing {
    /// 0 low, 1 normal, 2 high; the spec's when absent.
    pub priority: Option<i64>,
    /// Held back this long (a duration like `30s`).
    pub delay: Option<String>,
    /// Held back until this RFC 3339 time.
    pub run_after: Option<String>,
}

/// One job to submit.
#[derive(Clone, Debug)]
pub struct Submission {
    pub source: Source,
    /// Keboola's `mode` (`run` or `debug`), set over the spec's.
    pub mode: Option<RunMode>,
    pub timing: Timing,
    /// The token that sent it (the job's `KBC_TOKENID`/`KBC_TOKENDESC`).
    pub token: Option<(gantry_core::TokenId, String)>,
    /// What fired it (a schedule's tick, a webhook delivery).
    pub trigger: Option<Trigger>,
}

impl Submission {
    pub fn new(source: Source) -> Self {
        Self {
            source,
            mode: None,
            timing: Timing::default(),
            token: None,
            trigger: None,
        }
    }

    /// Sent by this caller's token.
    pub fn by(mut self, p: &Principal) -> Self {
        self.token = Some((p.token_id.clone(), p.token_desc.clone()));
        self
    }
}

/// Most jobs one batch may hold.
pub const MAX_BATCH: usize = 1000;

/// The longest a submission may be delayed.
const MAX_DELAY: Duration = Duration::from_secs(366 * 24 * 3600);

impl Control {
    /// Validates a spec, checks its loosenings against the project's policy
    /// and seals its secrets (in `parameters`, `authorization`, rows and
    /// notification targets); returns what is stored and the domain spec.
    pub async fn seal_spec(
        &self,
        project: &ProjectId,
        value: Value,
    ) -> Result<(Value, Spec), SubmitError> {
        let (doc, spec) = Spec::from_value(value)?;
        // Only a spec that loosens a default costs a lookup.
        if !spec.loosenings().is_empty() {
            let allowed = self.store.get_project(project).await?.allow;
            spec.check_allowed(project.as_str(), &allowed)?;
        }
        let mut stored = serde_json::to_value(&doc)
            .map_err(|e| SubmitError::Invalid(format!("the spec cannot be stored: {e}")))?;
        let _ = gantry_core::spec::visit_secret_maps::<(), _>(&mut stored, |m| {
            self.vault.seal_params(m);
            Ok(())
        });
        seal_notify(&self.vault, &mut stored);
        Ok((stored, spec))
    }

    /// What one submission becomes, not yet queued: for callers that queue
    /// it together with something else in one transaction (a schedule's
    /// tick, a webhook delivery).
    pub async fn prepare(
        &self,
        project: &ProjectId,
        sub: Submission,
    ) -> Result<NewJob, SubmitError> {
        let (mut value, config) = match sub.source {
            Source::Spec(v) => (v, None),
            Source::Config(id) => (self.store.get_config(project, &id).await?.spec, Some(id)),
            Source::Job(id) => {
                let old = self.store.get_job(project, id).await?;
                (old.spec, old.config_id)
            }
        };
        if let (Some(mode), Some(obj)) = (&sub.mode, value.as_object_mut()) {
            if let Ok(mode) = serde_json::to_value(mode) {
                obj.insert("mode".into(), mode);
            }
        }
        let (stored, spec) = self.seal_spec(project, value).await?;
        let mut job = NewJob::from_spec(project.clone(), config, stored, &spec);
        if let Some((id, desc)) = sub.token {
            job.token_id = Some(id.to_string());
            job.token_desc = Some(desc);
        }
        job.trigger = sub.trigger;
        apply_timing(&mut job, &sub.timing)?;
        Ok(job)
    }

    /// Submits one job: prepared, then queued.
    pub async fn submit(&self, project: &ProjectId, sub: Submission) -> Result<Job, SubmitError> {
        let job = self.prepare(project, sub).await?;
        Ok(self.store.enqueue(job).await?)
    }

    /// Many jobs in one commit: all are queued or, when one is refused,
    /// none (the error names its index).
    pub async fn submit_batch(
        &self,
        project: &ProjectId,
        subs: Vec<Submission>,
    ) -> Result<Vec<JobId>, SubmitError> {
        if subs.is_empty() || subs.len() > MAX_BATCH {
            return Err(SubmitError::Invalid(format!(
                "jobs: send between 1 and {MAX_BATCH} jobs"
            )));
        }
        let mut jobs = Vec::with_capacity(subs.len());
        for (index, sub) in subs.into_iter().enumerate() {
            let job = self
                .prepare(project, sub)
                .await
                .map_err(|e| SubmitError::InBatch {
                    index,
                    error: Box::new(e),
                })?;
            jobs.push(job);
        }
        Ok(self.store.enqueue_batch(jobs).await?)
    }
}

/// Applies a submission's `priority`, `delay` and `run_after`.
fn apply_timing(job: &mut NewJob, t: &Timing) -> Result<(), SubmitError> {
    if let Some(p) = t.priority {
        job.priority = gantry_core::spec::check_priority(p, "priority")?;
    }
    if t.delay.is_some() && t.run_after.is_some() {
        return Err(SubmitError::Invalid(
            "delay, run_after: send at most one of them".into(),
        ));
    }
    if let Some(text) = &t.delay {
        let d = gantry_core::units::parse_duration(text)
            .map_err(|e| SubmitError::Invalid(format!("delay: {e}")))?;
        if d > MAX_DELAY {
            return Err(SubmitError::Invalid(
                "delay: must be at most 366 days".into(),
            ));
        }
        job.delay = d;
    }
    if let Some(text) = &t.run_after {
        let at = humantime::parse_rfc3339_weak(text).map_err(|e| {
            SubmitError::Invalid(format!(
                "run_after: must be an RFC 3339 time like 2026-01-31T12:00:00Z ({e})"
            ))
        })?;
        let ms = at
            .duration_since(UNIX_EPOCH)
            .map_err(|_| SubmitError::Invalid("run_after: must be after 1970".into()))?
            .as_millis() as i64;
        if at > SystemTime::now() + MAX_DELAY {
            return Err(SubmitError::Invalid(
                "run_after: must be at most 366 days ahead".into(),
            ));
        }
        job.run_at = Some(ms);
    }
    Ok(())
}

/// Seals the `#secret` of each notification target in a spec or pipeline.
pub fn seal_notify(vault: &Vault, doc: &mut Value) {
    for n in doc
        .get_mut("notify")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Some(Value::String(s)) = n.get_mut("#secret") {
            if !s.starts_with(gantry_vault::PREFIX) {
                *s = vault.seal(s);
            }
        }
    }
}
