//! Printing results as tables (for people) or JSON (for scripts), and a
//! spinner on a terminal while waiting.

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use std::io::IsTerminal;

pub fn json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
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

pub fn job_row(j: &Value) -> Vec<String> {
    let error = j["error"]["kind"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_default();
    vec![
        s(&j["id"]),
        s(&j["status"]),
        error,
        format!("{}/{}", s(&j["attempt"]), s(&j["max_attempts"])),
        s(&j["spec"]["image"]),
        s(&j["queued_at"]),
        j["waiting"].as_str().unwrap_or_default().to_string(),
    ]
}

pub const JOB_HEADERS: [&str; 7] = [
    "ID", "STATUS", "ERROR", "ATTEMPT", "IMAGE", "QUEUED", "WAITING",
];

pub fn job_detail(j: &Value) {
    let field = |k: &str, v: String| println!("{k:<14}{v}");
    field("id", s(&j["id"]));
    field("status", s(&j["status"]));
    if let Some(kind) = j["error"]["kind"].as_str() {
        field("error", format!("{kind}: {}", s(&j["error"]["message"])));
    }
    if !j["exit_code"].is_null() {
        field("exit code", s(&j["exit_code"]));
    }
    if let Some(c) = j["config"].as_str() {
        field("config", c.to_string());
    }
    field("image", s(&j["spec"]["image"]));
    field("image digest", s(&j["image_digest"]));
    field(
        "attempts",
        format!("{} of {}", s(&j["attempt"]), s(&j["max_attempts"])),
    );
    field("priority", s(&j["priority"]));
    if let Some(c) = j["concurrency"].as_object() {
        field(
            "concurrency",
            format!("key {} limit {}", s(&c["key"]), s(&c["limit"])),
        );
    }
    if let Some(t) = j["trigger"].as_object() {
        let at = match t.get("tick") {
            Some(tick) => format!("tick {}", s(tick)),
            None => format!("delivery {}", s(&t["delivery"])),
        };
        field("trigger", format!("{} {} {at}", s(&t["kind"]), s(&t["id"])));
    }
    if let Some(w) = j["waiting"].as_str() {
        field("waiting", w.to_string());
    }
    field("worker", s(&j["worker"]));
    field("queued", s(&j["queued_at"]));
    field("started", s(&j["started_at"]));
    field("finished", s(&j["finished_at"]));
    if let Some(l) = j["limits"].as_object() {
        let text: Vec<String> = l.iter().map(|(k, v)| format!("{k}={}", s(v))).collect();
        field("limits", text.join(" "));
    }
    for n in j["notifications"].as_array().into_iter().flatten() {
        let tries: Vec<String> = n["attempts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| match a["status_code"].as_u64() {
                Some(c) => c.to_string(),
                None => s(&a["error"]),
            })
            .collect();
        field(
            "notify",
            format!(
                "{} {} ({})",
                s(&n["url"]),
                s(&n["status"]),
                tries.join(", ")
            ),
        );
    }
    if let Some(attempts) = j["attempts"].as_array() {
        for a in attempts {
            let err = a["error"]["kind"]
                .as_str()
                .map(|k| format!(" ({k}: {})", s(&a["error"]["message"])))
                .unwrap_or_default();
            field(
                &format!("attempt {}", s(&a["number"])),
                format!("{} on {}{err}", s(&a["status"]), s(&a["worker"])),
            );
        }
    }
}

/// Prints one event the way `logs` shows it.
pub fn event_line(e: &Value) {
    let msg = s(&e["message"]);
    match e["stream"].as_str() {
        Some("stdout") => println!("{msg}"),
        Some("system") => eprintln!("gantry: {msg}"),
        _ => eprintln!("{msg}"),
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
