//! Printing results as tables (for people) or JSON (for scripts), and a
//! spinner on a terminal while waiting.

use gantry_wire::{EventView, JobView, TriggerView};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use std::io::IsTerminal;

pub fn json<T: serde::Serialize>(v: &T) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// An answer as `--output` asks: JSON as the server sent it, or what
/// `table` prints for people.
pub fn print<T: serde::Serialize>(g: &crate::Global, v: &T, table: impl FnOnce(&T)) {
    match g.output {
        crate::OutputFormat::Json => json(v),
        crate::OutputFormat::Table => table(v),
    }
}

/// Prints rows under headers, columns padded to their widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{:w$}", c, w = widths[i]))
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(headers.iter().map(|h| h.to_string()).collect());
    for r in rows {
        line(r.clone());
    }
}

pub fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub fn or_dash(v: Option<impl ToString>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

pub fn job_row(j: &JobView) -> Vec<String> {
    vec![
        j.id.clone(),
        j.status.clone(),
        j.error.as_ref().map(|e| e.kind.clone()).unwrap_or_default(),
        format!("{}/{}", j.attempt, j.max_attempts),
        s(&j.spec["image"]),
        j.queued_at.clone(),
        j.waiting.clone().unwrap_or_default(),
    ]
}

pub const JOB_HEADERS: [&str; 7] = [
    "ID", "STATUS", "ERROR", "ATTEMPT", "IMAGE", "QUEUED", "WAITING",
];

pub fn job_detail(j: &JobView) {
    let field = |k: &str, v: String| println!("{k:<14}{v}");
    field("id", j.id.clone());
    field("status", j.status.clone());
    if let Some(e) = &j.error {
        field("error", format!("{}: {}", e.kind, e.message));
    }
    if let Some(code) = j.exit_code {
        field("exit code", code.to_string());
    }
    if let Some(c) = &j.config {
        field("config", c.clone());
    }
    field("image", s(&j.spec["image"]));
    field("image digest", or_dash(j.image_digest.as_ref()));
    field("attempts", format!("{} of {}", j.attempt, j.max_attempts));
    field("priority", j.priority.to_string());
    if let Some(c) = &j.concurrency {
        field("concurrency", format!("key {} limit {}", c.key, c.limit));
    }
    if let Some(t) = &j.trigger {
        let text = match t {
            TriggerView::Schedule { id, tick } => format!("schedule {id} tick {tick}"),
            TriggerView::Webhook { id, delivery } => format!("webhook {id} delivery {delivery}"),
            TriggerView::Pipeline { run, phase, task } => {
                format!("pipeline run {run} phase {phase} task {task}")
            }
        };
        field("trigger", text);
    }
    if let Some(w) = &j.waiting {
        field("waiting", w.clone());
    }
    field("worker", or_dash(j.worker.as_ref()));
    field("queued", j.queued_at.clone());
    field("started", or_dash(j.started_at.as_ref()));
    field("finished", or_dash(j.finished_at.as_ref()));
    let limits = j.limits.as_ref().and_then(|l| serde_json::to_value(l).ok());
    if let Some(l) = limits.as_ref().and_then(Value::as_object) {
        let text: Vec<String> = l.iter().map(|(k, v)| format!("{k}={}", s(v))).collect();
        field("limits", text.join(" "));
    }
    for n in &j.notifications {
        let tries: Vec<String> = n
            .attempts
            .iter()
            .map(|a| match a.status_code {
                Some(c) => c.to_string(),
                None => or_dash(a.error.as_ref()),
            })
            .collect();
        field(
            "notify",
            format!("{} {} ({})", n.url, n.status, tries.join(", ")),
        );
    }
    for a in &j.attempts {
        let err = a
            .error
            .as_ref()
            .map(|e| format!(" ({}: {})", e.kind, e.message))
            .unwrap_or_default();
        field(
            &format!("attempt {}", a.number),
            format!("{} on {}{err}", a.status, a.worker),
        );
    }
}

/// Prints one event the way `logs` shows it.
pub fn event_line(e: &EventView) {
    match e.stream.as_str() {
        "stdout" => println!("{}", e.message),
        "system" => eprintln!("gantry: {}", e.message),
        _ => eprintln!("{}", e.message),
    }
}

pub fn spinner(message: &str) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let pb = ProgressBar::new_spinner();
    pb.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    pb.set_message(message.to_string());
    pb.enable_steady_tick(std::time::Duration::from_millis(100));
    Some(pb)
}
