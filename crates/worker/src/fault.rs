//! Deterministic fault injection for crash tests: when `GANTRY_FAULTS`
//! names a point (comma-separated), the process dies there at once, like a
//! `kill -9` at that moment. Points: `after-exit` (the container ended),
//! `during-upload` (outputs written to the object store, not committed),
//! `before-commit`, `after-commit`.

use std::sync::OnceLock;

fn armed() -> &'static Vec<String> {
    static POINTS: OnceLock<Vec<String>> = OnceLock::new();
    POINTS.get_or_init(|| {
        std::env::var("GANTRY_FAULTS")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    })
}

pub fn point(name: &str) {
    if armed().iter().any(|p| p == name) {
        eprintln!("gantry: fault injected at '{name}'; exiting");
        std::process::exit(86);
    }
}
