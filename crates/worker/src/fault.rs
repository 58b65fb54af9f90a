//! Deterministic fault injection for crash tests: when `GANTRY_FAULTS`
//! names a point (comma-separated), the process dies there at once, like a
//! `kill -9` at that moment. Points: `after-exit` (the container ended),
//! `during-upload` (outputs written to the object store, not committed),
//! `before-commit`, `after-commit`.
//!
//! Compiled in only with the `faults` cargo feature, which the end-to-end
//! tests turn on (the cli crate's dev-dependency on this crate); a release
//! build has no such points and ignores `GANTRY_FAULTS`.

#[cfg(feature = "faults")]
fn armed() -> &'static Vec<String> {
    static POINTS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    POINTS.get_or_init(|| {
        std::env::var("GANTRY_FAULTS")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    })
}

#[cfg(feature = "faults")]
pub fn point(name: &str) {
    if armed().iter().any(|p| p == name) {
        eprintln!("gantry: fault injected at '{name}'; exiting");
        std::process::exit(86);
    }
}

/// Without the `faults` feature a point is nothing at all.
#[cfg(not(feature = "faults"))]
#[inline(always)]
pub fn point(_name: &str) {}
