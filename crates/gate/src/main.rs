//! `gantry-gate`: the first process of a warm container. It waits on stdin
//! for its one hand-over, then execs the job's command in its own place
//! (same PID, working directory and user; stdin reopened on /dev/null as a
//! cold container's; signal dispositions and mask reset by `exec`), so
//! nothing of the gate is left but the mount of its binary. See
//! ARCHITECTURE.md, "Warm starts".
#![forbid(unsafe_code)]

use gantry_gate::{lay_over, Handover, MAX_MESSAGE};
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode, Stdio};

fn main() -> ExitCode {
    let mut bytes = Vec::new();
    let read = std::io::stdin()
        .lock()
        .take(MAX_MESSAGE as u64 + 1)
        .read_to_end(&mut bytes);
    // No whole message: the worker died or gave up on this container.
    let Some(h) = read.ok().and_then(|_| Handover::decode(&bytes)) else {
        return ExitCode::from(75);
    };
    drop(bytes);
    let own: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let env = lay_over(own, &h.env);
    // The new environment's PATH finds the program, as the engine's does.
    let err = Command::new(&h.argv[0])
        .args(&h.argv[1..])
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .exec();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{} exec: \"{}\": {err}", h.nonce, h.argv[0]);
    let _ = out.flush();
    ExitCode::from(127)
}
