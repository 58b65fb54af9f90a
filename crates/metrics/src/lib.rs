//! Gantry's Prometheus metrics: one process-wide registry that the worker,
//! the log pipeline and the HTTP layer record into, rendered in the text
//! exposition format (`GET /metrics`). Figures that live in the store (queue
//! depth, storage use) are read at scrape time by whoever renders, and set
//! through [`Metrics::set_queue`] and [`Metrics::set_storage`].
//!
//! Process-wide on purpose: a job's timings are observed deep inside an
//! attempt, and a global registry keeps every layer free of plumbing. A
//! process holds one worker at most, so per-worker gauges carry its id.
#![forbid(unsafe_code)]

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use std::sync::OnceLock;
use std::time::Duration;

/// Buckets for job phases, from a warm start (ms) to a long batch job (hours).
const PHASE_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
    3600.0, 14400.0,
];
/// Buckets for HTTP latency.
const HTTP_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0,
];

/// One timed phase of a job.
#[derive(Clone, Copy, Debug)]
pub enum Phase {
    /// From enqueue (or `run_after`) to the claim.
    QueueWait,
    /// Pulling the image (only when a pull happens).
    ImagePull,
    /// Creating and starting the container.
    ContainerStart,
    /// From the container's start to its end.
    Run,
    /// Storing the outputs and committing the attempt's end.
    OutputCommit,
}

impl Phase {
    fn histogram(self, m: &Metrics) -> &prometheus::Histogram {
        &m.phases[self as usize]
    }
}

pub struct Metrics {
    registry: Registry,
    jobs_started: IntCounterVec,
    jobs_finished: IntCounterVec,
    phases: Vec<prometheus::Histogram>,
    worker_running: IntGaugeVec,
    worker_free: IntGaugeVec,
    worker_up: IntGaugeVec,
    log_lines: IntCounterVec,
    log_bytes: IntCounterVec,
    log_ship_dropped: prometheus::IntCounter,
    http_requests: IntCounterVec,
    http_latency: HistogramVec,
    jobs: IntGaugeVec,
    queue_depth: IntGaugeVec,
    queue_oldest: GaugeVec,
    running_jobs: IntGaugeVec,
    storage_bytes: IntGaugeVec,
    storage_versions: IntGaugeVec,
    storage_files: IntGaugeVec,
}

/// The store's view of one project's queue, read at scrape time.
#[derive(Clone, Debug, Default)]
pub struct QueueFigures {
    pub project: String,
    pub queued: i64,
    pub running: i64,
    /// Age of the oldest queued job that is due (`run_after` passed).
    pub oldest_due_age: Duration,
}

/// The store's view of one project's Storage, read at scrape time.
#[derive(Clone, Debug, Default)]
pub struct StorageFigures {
    pub project: String,
    /// Bytes of every table's current version.
    pub table_bytes: i64,
    /// Bytes of every stored file.
    pub file_bytes: i64,
    pub table_versions: i64,
    pub files: i64,
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(c.clone())).expect("registered once");
    c
}

fn gauge(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(g.clone())).expect("registered once");
    g
}

fn histogram(r: &Registry, name: &str, help: &str, buckets: &[f64]) -> prometheus::Histogram {
    let h =
        prometheus::Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
            .expect("valid metric");
    r.register(Box::new(h.clone())).expect("registered once");
    h
}

impl Metrics {
    #[allow(clippy::expect_used)]
    fn new() -> Self {
        let r = Registry::new();
        let build = gauge(
            &r,
            "gantry_build_info",
            "Gantry's version (always 1).",
            &["version"],
        );
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let phases = vec![
            histogram(
                &r,
                "gantry_job_queue_wait_seconds",
                "Time a job waited from becoming due to being claimed.",
                PHASE_BUCKETS,
            ),
            histogram(
                &r,
                "gantry_image_pull_seconds",
                "Time spent pulling images before a container could start.",
                PHASE_BUCKETS,
            ),
            histogram(
                &r,
                "gantry_container_start_seconds",
                "Time to create and start a job's container.",
                PHASE_BUCKETS,
            ),
            histogram(
                &r,
                "gantry_job_run_seconds",
                "Time from a container's start to its end.",
                PHASE_BUCKETS,
            ),
            histogram(
                &r,
                "gantry_output_commit_seconds",
                "Time to store an attempt's outputs and commit its end.",
                PHASE_BUCKETS,
            ),
        ];
        let http_latency = HistogramVec::new(
            HistogramOpts::new(
                "gantry_http_request_duration_seconds",
                "HTTP request latency by route (to the response head).",
            )
            .buckets(HTTP_BUCKETS.to_vec()),
            &["route", "method"],
        )
        .expect("valid metric");
        r.register(Box::new(http_latency.clone()))
            .expect("registered once");
        let queue_oldest = GaugeVec::new(
            Opts::new(
                "gantry_queue_oldest_age_seconds",
                "Age of the oldest due queued job, by project (0 when none).",
            ),
            &["project"],
        )
        .expect("valid metric");
        r.register(Box::new(queue_oldest.clone()))
            .expect("registered once");
        Self {
            jobs_started: counter(
                &r,
                "gantry_jobs_started_total",
                "Attempts started by this process's worker.",
                &["project"],
            ),
            jobs_finished: counter(
                &r,
                "gantry_jobs_finished_total",
                "Attempts ended by this process's worker, by the job's status and error kind.",
                &["project", "status", "error_kind"],
            ),
            phases,
            worker_running: gauge(
                &r,
                "gantry_worker_running_jobs",
                "Jobs running on this worker.",
                &["worker"],
            ),
            worker_free: gauge(
                &r,
                "gantry_worker_free_slots",
                "Free slots of this worker.",
                &["worker"],
            ),
            worker_up: gauge(
                &r,
                "gantry_worker_up",
                "1 while this process's worker runs and its engine answers; 0 while the engine does not.",
                &["worker"],
            ),
            log_lines: counter(
                &r,
                "gantry_log_lines_total",
                "Log lines of jobs, captured or dropped (past a job's cap).",
                &["outcome"],
            ),
            log_bytes: counter(
                &r,
                "gantry_log_bytes_total",
                "Bytes of job log lines, captured or dropped.",
                &["outcome"],
            ),
            log_ship_dropped: {
                let c = prometheus::IntCounter::new(
                    "gantry_log_ship_dropped_total",
                    "Log records not shipped: a target's queue was full or it could not take them.",
                )
                .expect("valid metric");
                r.register(Box::new(c.clone())).expect("registered once");
                c
            },
            http_requests: counter(
                &r,
                "gantry_http_requests_total",
                "HTTP requests by route, method and status.",
                &["route", "method", "status"],
            ),
            http_latency,
            jobs: gauge(&r, "gantry_jobs", "Jobs by status (all projects).", &["status"]),
            queue_depth: gauge(
                &r,
                "gantry_queue_depth",
                "Queued jobs by project (due or held back).",
                &["project"],
            ),
            queue_oldest,
            running_jobs: gauge(
                &r,
                "gantry_jobs_running",
                "Running jobs by project (all workers).",
                &["project"],
            ),
            storage_bytes: gauge(
                &r,
                "gantry_storage_bytes",
                "Bytes in Storage by project and kind (current table versions, files).",
                &["project", "kind"],
            ),
            storage_versions: gauge(
                &r,
                "gantry_storage_table_versions",
                "Table versions kept, by project.",
                &["project"],
            ),
            storage_files: gauge(
                &r,
                "gantry_storage_files",
                "Files kept, by project.",
                &["project"],
            ),
            registry: r,
        }
    }

    pub fn job_started(&self, project: &str) {
        self.jobs_started.with_label_values(&[project]).inc();
    }

    /// `error_kind` is empty for a job that did not fail.
    pub fn job_finished(&self, project: &str, status: &str, error_kind: &str) {
        self.jobs_finished
            .with_label_values(&[project, status, error_kind])
            .inc();
    }

    pub fn observe(&self, phase: Phase, took: Duration) {
        phase.histogram(self).observe(took.as_secs_f64());
    }

    pub fn set_slots(&self, worker: &str, running: usize, slots: usize) {
        self.worker_running
            .with_label_values(&[worker])
            .set(running as i64);
        self.worker_free
            .with_label_values(&[worker])
            .set(slots.saturating_sub(running) as i64);
    }

    pub fn set_worker_up(&self, worker: &str, up: bool) {
        self.worker_up
            .with_label_values(&[worker])
            .set(i64::from(up));
    }

    pub fn log_captured(&self, lines: u64, bytes: u64) {
        self.log_lines
            .with_label_values(&["captured"])
            .inc_by(lines);
        self.log_bytes
            .with_label_values(&["captured"])
            .inc_by(bytes);
    }

    pub fn log_dropped(&self, lines: u64, bytes: u64) {
        self.log_lines.with_label_values(&["dropped"]).inc_by(lines);
        self.log_bytes.with_label_values(&["dropped"]).inc_by(bytes);
    }

    pub fn log_ship_dropped(&self, records: u64) {
        self.log_ship_dropped.inc_by(records);
    }

    /// `route` is the matched route template (`/v1/jobs/{id}`), never the raw
    /// path, so ids do not become label values.
    pub fn http_request(&self, route: &str, method: &str, status: u16, took: Duration) {
        self.http_requests
            .with_label_values(&[route, method, &status.to_string()])
            .inc();
        self.http_latency
            .with_label_values(&[route, method])
            .observe(took.as_secs_f64());
    }

    /// Sets the count of jobs by status.
    pub fn set_jobs(&self, by_status: &[(&str, i64)]) {
        for (status, n) in by_status {
            self.jobs.with_label_values(&[status]).set(*n);
        }
    }

    /// Replaces the queue figures (projects that vanished drop out).
    pub fn set_queue(&self, figures: &[QueueFigures]) {
        self.queue_depth.reset();
        self.queue_oldest.reset();
        self.running_jobs.reset();
        for f in figures {
            let p = [f.project.as_str()];
            self.queue_depth.with_label_values(&p).set(f.queued);
            self.running_jobs.with_label_values(&p).set(f.running);
            self.queue_oldest
                .with_label_values(&p)
                .set(f.oldest_due_age.as_secs_f64());
        }
    }

    /// Replaces the Storage figures.
    pub fn set_storage(&self, figures: &[StorageFigures]) {
        self.storage_bytes.reset();
        self.storage_versions.reset();
        self.storage_files.reset();
        for f in figures {
            let p = f.project.as_str();
            self.storage_bytes
                .with_label_values(&[p, "tables"])
                .set(f.table_bytes);
            self.storage_bytes
                .with_label_values(&[p, "files"])
                .set(f.file_bytes);
            self.storage_versions
                .with_label_values(&[p])
                .set(f.table_versions);
            self.storage_files.with_label_values(&[p]).set(f.files);
        }
    }

    /// The text exposition format (`text/plain; version=0.0.4`).
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding our own families into a Vec cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The process-wide metrics.
pub fn global() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(Metrics::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_help_and_type() {
        let m = Metrics::new();
        m.job_started("default");
        m.job_finished("default", "failed", "oom");
        m.observe(Phase::Run, Duration::from_millis(20));
        m.http_request("/v1/jobs/{id}", "GET", 404, Duration::from_micros(300));
        m.set_queue(&[QueueFigures {
            project: "default".into(),
            queued: 3,
            running: 1,
            oldest_due_age: Duration::from_secs(2),
        }]);
        let text = m.render();
        for family in [
            "gantry_build_info",
            "gantry_jobs_started_total",
            "gantry_jobs_finished_total",
            "gantry_job_run_seconds",
            "gantry_http_requests_total",
            "gantry_queue_depth",
            "gantry_queue_oldest_age_seconds",
        ] {
            assert!(
                text.contains(&format!("# TYPE {family} ")),
                "{family}\n{text}"
            );
        }
        assert!(
            text.contains(r#"gantry_queue_depth{project="default"} 3"#),
            "{text}"
        );
        assert!(text.contains(
            r#"gantry_jobs_finished_total{error_kind="oom",project="default",status="failed"} 1"#
        ));
        // A vanished project drops out at the next scrape.
        m.set_queue(&[]);
        assert!(!m
            .render()
            .contains(r#"gantry_queue_depth{project="default"}"#));
    }
}
