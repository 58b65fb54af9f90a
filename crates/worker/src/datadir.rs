//! The data folder a container sees at `/data` (Keboola's Common Interface).

use gantry_core::Spec;
use serde_json::{json, Value};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Largest `out/state.json` accepted.
pub const MAX_STATE_BYTES: u64 = 16 << 20;

const DIRS: [&str; 6] = [
    "in",
    "in/tables",
    "in/files",
    "out",
    "out/tables",
    "out/files",
];

/// Builds `config.json` as components expect it; `action` is `run` for a
/// job, else a sync action's name.
pub fn config_json(spec: &Spec, action: &str) -> Value {
    let mut config = json!({
        "parameters": spec.parameters,
        "storage": spec.storage,
        "image_parameters": spec.image_parameters,
        "action": action,
        "authorization": spec.authorization,
    });
    if !spec.shared_code_row_ids.is_empty() {
        config["shared_code_row_ids"] = json!(spec.shared_code_row_ids);
    }
    config
}

/// What [`prepare`] found and changed in a folder it was given.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Prepared {
    /// Entries left in `out/` by an earlier run, removed: Keboola starts every
    /// job with an empty `out/`.
    pub cleared_out: usize,
}

/// Lays out `dir` for one attempt: folders, `config.json` and `in/state.json`.
///
/// Existing input files are kept (so `gantry run --data DIR` works on a
/// folder the author prepared); `out/` is emptied, as Keboola starts every
/// job; `in/state.json` is written only when `state` is given or none
/// exists. Every folder is made writable by any uid and every file readable
/// (files outside `in/` writable too), because the container runs as a
/// non-root user of its own while the folder's files may belong to someone
/// else; the job folder's parent is private to Gantry. Links are never
/// followed.
pub fn prepare(
    dir: &Path,
    spec: &Spec,
    state: Option<&Value>,
    action: &str,
) -> std::io::Result<Prepared> {
    std::fs::create_dir_all(dir)?;
    let out = dir.join("out");
    let mut prepared = Prepared::default();
    match out.symlink_metadata() {
        Ok(m) if m.is_dir() => {
            prepared.cleared_out = count_entries(&out, 0);
            // Counted without the folders Gantry makes itself.
            prepared.cleared_out = prepared.cleared_out.saturating_sub(
                ["tables", "files"]
                    .iter()
                    .filter(|d| out.join(d).is_dir())
                    .count(),
            );
            if prepared.cleared_out > 0 {
                std::fs::remove_dir_all(&out)?;
            }
        }
        Ok(_) => {
            prepared.cleared_out = 1;
            std::fs::remove_file(&out)?;
        }
        Err(_) => {}
    }
    for d in DIRS {
        std::fs::create_dir_all(dir.join(d))?;
    }
    open_up(dir, false)?;
    write_file(
        &dir.join("config.json"),
        &serde_json::to_vec_pretty(&config_json(spec, action)).unwrap_or_default(),
    )?;
    let state_path = dir.join("in/state.json");
    match state {
        Some(s) => write_file(&state_path, &serde_json::to_vec(s).unwrap_or_default())?,
        None if !state_path.exists() => write_file(&state_path, b"{}")?,
        None => {}
    }
    Ok(prepared)
}

/// Entries under `dir` (recursively, links not followed), bounded in depth.
fn count_entries(dir: &Path, depth: usize) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        n += 1;
        if depth < 64 && e.file_type().is_ok_and(|t| t.is_dir()) {
            n += count_entries(&e.path(), depth + 1);
        }
    }
    n
}

/// Folders 0777, files readable by all (and writable outside `in/`), so
/// the job's own uid can use what another user left; links untouched.
fn open_up(dir: &Path, inside_in: bool) -> std::io::Result<()> {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777))?;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let t = e.file_type()?;
        let path = e.path();
        if t.is_dir() {
            let in_in = inside_in || path.file_name().is_some_and(|n| n == "in");
            open_up(&path, in_in)?;
        } else if t.is_file() {
            let mode = e.metadata()?.permissions().mode() & 0o7777;
            let want = mode | if inside_in { 0o444 } else { 0o666 };
            if want != mode {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(want))?;
            }
        }
    }
    Ok(())
}

/// A webhook delivery's body as `in/files/webhook.json`, with its manifest
/// (hook, delivery id, request headers) beside it.
pub fn write_webhook(dir: &Path, body: &[u8], manifest: &Value) -> std::io::Result<()> {
    write_file(&dir.join("in/files/webhook.json"), body)?;
    write_file(
        &dir.join("in/files/webhook.json.manifest"),
        &serde_json::to_vec_pretty(manifest).unwrap_or_default(),
    )
}

fn write_file(path: &Path, data: &[u8]) -> std::io::Result<()> {
    // Never write through a symlink a previous run may have left.
    if path.symlink_metadata().is_ok() {
        std::fs::remove_file(path)?;
    }
    std::fs::write(path, data)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("out/state.json is not a regular file (symlinks and special files are refused)")]
    NotRegular,
    #[error("out/state.json is larger than {MAX_STATE_BYTES} bytes")]
    TooLarge,
    #[error("out/state.json is not valid JSON: {0}")]
    Invalid(String),
    #[error("out/state.json cannot be read: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads `out/state.json` written by the container, trusting nothing:
/// no symlinks, bounded size, must be a JSON object. `None` when absent.
pub fn read_new_state(dir: &Path) -> Result<Option<Value>, StateError> {
    let path = dir.join("out/state.json");
    let meta = match path.symlink_metadata() {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if !meta.file_type().is_file() {
        return Err(StateError::NotRegular);
    }
    if meta.len() > MAX_STATE_BYTES {
        return Err(StateError::TooLarge);
    }
    let mut f = open_no_follow(&path)?;
    let mut buf = Vec::new();
    f.by_ref().take(MAX_STATE_BYTES + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_STATE_BYTES {
        return Err(StateError::TooLarge);
    }
    match serde_json::from_slice::<Value>(&buf) {
        Ok(v @ Value::Object(_)) => Ok(Some(v)),
        Ok(_) => Err(StateError::Invalid("must be a JSON object".into())),
        Err(e) => Err(StateError::Invalid(e.to_string())),
    }
}

fn open_no_follow(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    // O_NOFOLLOW: refuse a symlink swapped in after the check above.
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(0o400000)
        .open(path)
}

/// Total size of the regular files under `dir` (symlinks not followed).
pub fn size_of(dir: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        match e.file_type() {
            Ok(t) if t.is_dir() => total += size_of(&e.path()),
            Ok(t) if t.is_file() => total += e.metadata().map_or(0, |m| m.len()),
            _ => {}
        }
    }
    total
}

/// Removes a job folder; files the container created are removed too.
pub fn remove(dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot remove a job's data folder");
        }
    }
}

/// Where an attempt's folder lives under the worker's work directory.
pub fn attempt_dir(work: &Path, job: &str, attempt: u32) -> PathBuf {
    work.join(format!("{job}-{attempt}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_state() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("d");
        let (_, spec) = Spec::parse("image: x\nparameters: {a: 1}").expect("spec");
        prepare(&dir, &spec, Some(&json!({"cursor": 5})), "run").expect("prepare");
        for d in DIRS {
            assert!(dir.join(d).is_dir(), "{d}");
        }
        let cfg: Value =
            serde_json::from_slice(&std::fs::read(dir.join("config.json")).expect("read"))
                .expect("json");
        assert_eq!(cfg["parameters"]["a"], 1);
        assert_eq!(cfg["action"], "run");
        assert_eq!(
            std::fs::read_to_string(dir.join("in/state.json")).expect("state"),
            r#"{"cursor":5}"#
        );

        assert!(read_new_state(&dir).expect("none").is_none());
        std::fs::write(dir.join("out/state.json"), r#"{"cursor": 6}"#).expect("write");
        assert_eq!(
            read_new_state(&dir).expect("ok"),
            Some(json!({"cursor": 6}))
        );
        std::fs::write(dir.join("out/state.json"), "[1]").expect("write");
        assert!(matches!(read_new_state(&dir), Err(StateError::Invalid(_))));
        std::fs::remove_file(dir.join("out/state.json")).expect("rm");
        std::os::unix::fs::symlink("/etc/passwd", dir.join("out/state.json")).expect("symlink");
        assert!(matches!(read_new_state(&dir), Err(StateError::NotRegular)));
    }
}
