//! Keboola's debug mode: after a job run with `mode: debug`, its whole data
//! folder is kept as a tar file in Storage (tags `debug`, `job-<id>`) for
//! the author to download and replay with `gantry run`. Secrets stay
//! sealed: every `config.json` is left out and the archive gets one written
//! from the job's stored (sealed) spec, plus that spec as `spec.json`.
//! Links and special files a container left are not archived.

use crate::datadir;
use gantry_core::Spec;
use serde_json::Value;
use std::path::Path;

/// Writes the archive of `dir` into a new temporary file.
pub fn archive(dir: &Path, sealed_spec: &Value) -> std::io::Result<std::fs::File> {
    use std::io::Seek;
    let mut file = tempfile::tempfile()?;
    {
        let mut b = tar::Builder::new(&mut file);
        b.follow_symlinks(false);
        add_tree(&mut b, dir, Path::new("data"), 0)?;
        if let Ok((_, spec)) = Spec::from_value(sealed_spec.clone()) {
            let config =
                serde_json::to_vec_pretty(&datadir::config_json(&spec, "run")).unwrap_or_default();
            add_bytes(&mut b, "data/config.json", &config)?;
        }
        let spec = serde_json::to_vec_pretty(sealed_spec).unwrap_or_default();
        add_bytes(&mut b, "data/spec.json", &spec)?;
        b.finish()?;
    }
    file.rewind()?;
    Ok(file)
}

fn add_bytes<W: std::io::Write>(
    b: &mut tar::Builder<W>,
    name: &str,
    bytes: &[u8],
) -> std::io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_size(bytes.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, name, bytes)
}

fn add_tree<W: std::io::Write>(
    b: &mut tar::Builder<W>,
    dir: &Path,
    name: &Path,
    depth: usize,
) -> std::io::Result<()> {
    if depth > 16 {
        return Ok(());
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let t = e.file_type()?;
        let child = name.join(e.file_name());
        if t.is_dir() {
            b.append_dir(&child, e.path())?;
            add_tree(b, &e.path(), &child, depth + 1)?;
        } else if t.is_file() && e.file_name() != "config.json" {
            b.append_path_with_name(e.path(), &child)?;
        }
    }
    Ok(())
}
