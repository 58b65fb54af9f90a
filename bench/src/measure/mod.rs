//! The measurements, one file per section. Each pairs Gantry with a reference
//! taken in the same run. This file holds what the sections share.

mod control;
mod fleet;
mod latency;
mod lifecycle;
mod logs;
mod memory;
mod storage;
mod throughput;
mod warm;

pub use control::control_plane;
pub use fleet::fleet;
pub use latency::latency;
pub use lifecycle::lifecycle;
pub use logs::logs;
pub use memory::memory;
pub use storage::storage;
pub use throughput::throughput;
pub use warm::warm;

use crate::Row;
use std::time::Duration;

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

const MIB: f64 = 1048576.0;

fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB
}

/// A memory figure against its limit: `below` is "<" or "≤".
fn memory_row(figure: &str, bytes: u64, below: &str, limit_mib: u64) -> Row {
    let limit = limit_mib << 20;
    let met = if below == "<" {
        bytes < limit
    } else {
        bytes <= limit
    };
    row(
        figure,
        format!("{:.1} MiB", mib(bytes)),
        "-".into(),
        None,
        &format!("{below} {limit_mib} MiB"),
        Some(met),
    )
}

pub(crate) fn row(
    figure: &str,
    gantry: String,
    reference: String,
    ratio: Option<f64>,
    goal: &str,
    met: Option<bool>,
) -> Row {
    Row {
        figure: figure.into(),
        gantry,
        reference,
        ratio,
        goal: goal.into(),
        met,
    }
}

fn noop_spec(image: &str) -> String {
    format!("image: {image}\ncommand: [\"true\"]\n")
}
