//! `codes`: register (multipart, a new revision per upload of a name),
//! list, show, delete, revisions, download.

use super::*;
use axum::extract::{DefaultBodyLimit, Multipart, Path, RawQuery, State};
use axum::routing::{get, post};
use gantry_store::{IronCode, IronCodeDoc, IronCodeRev};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/codes",
            get(list).merge(post(register).layer(DefaultBodyLimit::max(MAX_UPLOAD))),
        )
        .route("/codes/{id}", get(show).delete(remove))
        .route("/codes/{id}/revisions", get(revisions))
        .route("/codes/{id}/download", get(download))
        .route("/codes/{id}/stats", get(stats))
}

/// The longest code name.
const MAX_NAME: usize = 255;

fn code_view(c: &IronCode) -> Value {
    let d = &c.latest.doc;
    json!({
        "id": c.id,
        "project_id": c.project.as_str(),
        "name": c.name,
        "image": d.image,
        "command": d.command.clone().unwrap_or_default(),
        "runtime": d.runtime,
        "file_name": d.file_name,
        "rev": c.latest.rev,
        "latest_checksum": d.checksum,
        "latest_history_id": c.latest.id,
        "latest_change": rfc3339(c.updated_at),
        "created_at": rfc3339(c.created_at),
        "updated_at": rfc3339(c.updated_at),
        "config": d.config,
        "env_vars": d.env_vars,
        "max_concurrency": d.max_concurrency.map_or(-1, i64::from),
        "retries": d.retries,
        "retries_delay": d.retries_delay,
        "default_priority": d.default_priority,
    })
}

fn revision_view(r: &IronCodeRev) -> Value {
    json!({
        "id": r.id,
        "code_id": r.code_id,
        "rev": r.rev,
        "name": r.name,
        "image": r.doc.image,
        "command": r.doc.command.clone().unwrap_or_default(),
        "runtime": r.doc.runtime,
        "file_name": r.doc.file_name,
        "created_at": rfc3339(r.created_at),
    })
}

async fn list(
    State(s): State<AppState>,
    IronAuth(p): IronAuth,
    RawQuery(q): RawQuery,
) -> IronResult {
    let (offset, limit) = paging(&query_map(q.as_deref()))?;
    let codes = s.store.list_iron_codes(&p.project, offset, limit).await?;
    Ok(json_ok(
        json!({ "codes": codes.iter().map(code_view).collect::<Vec<_>>() }),
    ))
}

async fn show(
    State(s): State<AppState>,
    IronAuth(p): IronAuth,
    Path((_, id)): Path<(String, String)>,
) -> IronResult {
    Ok(json_ok(code_view(
        &s.store.get_iron_code(&p.project, &id).await?,
    )))
}

async fn remove(
    State(s): State<AppState>,
    IronAuth(p): IronAuth,
    Path((_, id)): Path<(String, String)>,
) -> IronResult {
    s.store.delete_iron_code(&p.project, &id).await?;
    Ok(json_ok(json!({"msg": "Deleted"})))
}

async fn revisions(
    State(s): State<AppState>,
    IronAuth(p): IronAuth,
    Path((_, id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> IronResult {
    let (offset, limit) = paging(&query_map(q.as_deref()))?;
    let revs = s
        .store
        .iron_code_revisions(&p.project, &id, offset, limit)
        .await?;
    Ok(json_ok(
        json!({ "revisions": revs.iter().map(revision_view).collect::<Vec<_>>() }),
    ))
}

/// The zip of a revision (`?revision=N`, default the latest).
async fn download(
    State(s): State<AppState>,
    IronAuth(p): IronAuth,
    Path((_, id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> IronResult {
    let q = query_map(q.as_deref());
    let code = s.store.get_iron_code(&p.project, &id).await?;
    let rev = match opt_int(q.get("revision"), "revision")? {
        None => code.latest.clone(),
        Some(n) => s
            .store
            .iron_code_revisions(&p.project, &id, 0, u64::MAX >> 1)
            .await?
            .into_iter()
            .find(|r| i64::from(r.rev) == n)
            .ok_or_else(|| IronError::new(StatusCode::NOT_FOUND, "Revision not found"))?,
    };
    let file = rev
        .doc
        .zip_file
        .ok_or_else(|| IronError::new(StatusCode::NOT_FOUND, "This code has no zip"))?;
    let f = s.store.get_file(&p.project, file).await?;
    let stream = s.storage.download(&f.object_key).await?;
    let stream = futures_util::StreamExt::map(stream, |r| r.map_err(std::io::Error::other));
    let name: String = code
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    Ok((
        [
            (header::CONTENT_TYPE, "application/zip".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("filename={name}_{}.zip", rev.rev),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// Task counts of a code by Iron status.
async fn stats(
    State(s): State<AppState>,
    IronAuth(p): IronAuth,
    Path((_, id)): Path<(String, String)>,
) -> IronResult {
    let code = s.store.get_iron_code(&p.project, &id).await?;
    let mut counts: BTreeMap<&'static str, u64> = [
        "queued",
        "running",
        "complete",
        "error",
        "cancelled",
        "timeout",
    ]
    .into_iter()
    .map(|k| (k, 0))
    .collect();
    let mut offset = 0;
    loop {
        let page = s
            .store
            .list_iron_tasks(
                &p.project,
                &gantry_store::IronTaskFilter {
                    code_name: Some(code.name.clone()),
                    offset,
                    limit: 1000,
                    ..Default::default()
                },
            )
            .await?;
        for (job, _) in &page {
            *counts
                .entry(super::tasks::iron_status(job.status))
                .or_default() += 1;
        }
        if page.len() < 1000 {
            break;
        }
        offset += 1000;
    }
    Ok(json_ok(
        json!({ "total": counts.values().sum::<u64>(), "level": counts }),
    ))
}

/// The code package a legacy zip of the code named `name` is kept as.
pub fn package_name(name: &str) -> String {
    format!(
        "iron-{}",
        &hex::encode(Sha256::digest(name.as_bytes()))[..16]
    )
}

/// The file a legacy zip runs: a relative path inside it.
fn check_file_name(f: &str) -> IronResult<()> {
    let ok = !f.is_empty()
        && f.len() <= 255
        && !f.starts_with('/')
        && f.split('/').all(|part| !part.is_empty() && part != "..")
        && f.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c));
    if ok {
        Ok(())
    } else {
        Err(IronError::bad(
            "file_name must be a relative path inside the zip (letters, digits, . _ - /)",
        ))
    }
}

/// Python 3's `iron-worker` 1.3.8 writes the zip part as the text of a
/// Python bytes literal (`b'PK\x03\x04...'`): decode that back to bytes.
/// `None` when the part is not such a literal.
fn python_bytes_literal(raw: &[u8]) -> Option<Vec<u8>> {
    let (quote, inner) = match raw {
        [b'b', q @ (b'\'' | b'"'), rest @ .., last] if last == q => (*q, rest),
        _ => return None,
    };
    let mut out = Vec::with_capacity(inner.len());
    let mut i = 0;
    while i < inner.len() {
        let c = inner[i];
        if c != b'\\' {
            if c == quote {
                return None;
            }
            out.push(c);
            i += 1;
            continue;
        }
        let next = *inner.get(i + 1)?;
        i += 2;
        match next {
            b'\\' => out.push(b'\\'),
            b'\'' => out.push(b'\''),
            b'"' => out.push(b'"'),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'x' => {
                let hex = inner.get(i..i + 2)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            _ => return None,
        }
    }
    Some(out)
}

/// Reads the `data` JSON part and the optional `file` part.
async fn read_parts(mut mp: Multipart) -> IronResult<(Value, Option<Vec<u8>>)> {
    let mut data = None;
    let mut file = None;
    while let Some(field) = mp
        .next_field()
        .await
        .map_err(|e| IronError::bad(format!("Invalid multipart body: {e}")))?
    {
        match field.name() {
            Some("data") => {
                let bytes = field
                    .bytes()
                    .await
                    .map_err(|e| IronError::bad(format!("Invalid multipart body: {e}")))?;
                data = Some(
                    serde_json::from_slice::<Value>(&bytes)
                        .map_err(|e| IronError::bad(format!("data: invalid JSON: {e}")))?,
                );
            }
            Some("file") => {
                let bytes = field
                    .bytes()
                    .await
                    .map_err(|e| IronError::bad(format!("Invalid multipart body: {e}")))?;
                if !bytes.is_empty() {
                    file = Some(bytes.to_vec());
                }
            }
            // Other parts are ignored, as Iron did.
            _ => {}
        }
    }
    let data = data.ok_or_else(|| {
        IronError::new(
            StatusCode::NOT_ACCEPTABLE,
            "Missing the 'data' part (a JSON object describing the code)",
        )
    })?;
    Ok((data, file))
}

/// What `data` says, checked; sentinels and unknown keys are accepted.
fn code_doc(data: &Value) -> IronResult<(String, IronCodeDoc)> {
    let obj = data
        .as_object()
        .ok_or_else(|| IronError::bad("data must be a JSON object"))?;
    let name = opt_str(obj.get("name"), "name")?
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| IronError::new(StatusCode::NOT_ACCEPTABLE, "name is required"))?;
    if name.len() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(IronError::bad(format!(
            "name must be 1-{MAX_NAME} characters without control characters"
        )));
    }
    let image = opt_str(obj.get("image"), "image")?.filter(|i| !i.trim().is_empty());
    if image
        .as_ref()
        .is_some_and(|i| i.len() > 512 || i.chars().any(char::is_whitespace))
    {
        return Err(IronError::bad(
            "image must be an image reference without spaces",
        ));
    }
    let config = opt_str(obj.get("config"), "config")?.filter(|c| !c.is_empty());
    if config.as_ref().is_some_and(|c| c.len() > MAX_PAYLOAD) {
        return Err(IronError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("config is too big (at most {MAX_PAYLOAD} bytes)"),
        ));
    }
    let mut env_vars = BTreeMap::new();
    match obj.get("env_vars") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                let v = opt_str(Some(v), &format!("env_vars.{k}"))?.unwrap_or_default();
                env_vars.insert(k.clone(), v);
            }
        }
        Some(_) => return Err(IronError::bad("env_vars must be an object of strings")),
    }
    let retries = opt_int(obj.get("retries"), "retries")?.unwrap_or(0);
    if retries > 10 {
        return Err(IronError::bad("retries must be at most 10"));
    }
    let retries_delay = opt_int(obj.get("retries_delay"), "retries_delay")?.unwrap_or(0);
    if retries_delay > 24 * 3600 {
        return Err(IronError::bad("retries_delay must be at most a day"));
    }
    let max_concurrency = opt_int(obj.get("max_concurrency"), "max_concurrency")?
        .filter(|n| *n > 0)
        .map(|n| u32::try_from(n.min(10_000)).unwrap_or(10_000));
    let default_priority =
        check_priority(opt_int(obj.get("default_priority"), "default_priority")?, 0)?;
    let doc = IronCodeDoc {
        image,
        command: opt_str(obj.get("command"), "command")?.filter(|c| !c.trim().is_empty()),
        config,
        env_vars,
        max_concurrency,
        retries: retries as u32,
        retries_delay: retries_delay as u32,
        default_priority,
        runtime: opt_str(obj.get("runtime"), "runtime")?.filter(|r| !r.is_empty()),
        file_name: opt_str(obj.get("file_name"), "file_name")?.filter(|f| !f.is_empty()),
        zip_file: None,
        package: None,
        config_file: None,
        checksum: None,
    };
    Ok((name, doc))
}

async fn register(State(s): State<AppState>, IronAuth(p): IronAuth, mp: Multipart) -> IronResult {
    let (data, file) = read_parts(mp).await?;
    let (name, mut doc) = code_doc(&data)?;
    if let Some(bytes) = file {
        let bytes = match python_bytes_literal(&bytes) {
            Some(decoded) => decoded,
            None => bytes,
        };
        if !bytes.starts_with(b"PK") {
            return Err(IronError::bad(
                "file: not a zip archive (a zip starts with 'PK')",
            ));
        }
        doc.checksum = Some(hex::encode(Sha256::digest(&bytes)));
        let zip_bytes = bytes.clone();
        let (key, size) = s
            .storage
            .upload(&p.project, "code.zip", std::io::Cursor::new(bytes))
            .await?;
        let f = s
            .store
            .create_file(
                &p.project,
                gantry_store::NewFile {
                    name: format!("{name}.zip"),
                    tags: vec!["iron".into(), "iron-code".into()],
                    size,
                    object_key: key,
                },
            )
            .await?;
        doc.zip_file = Some(f.id);
        // A legacy runtime zip (no image) runs as a code package on the
        // stack named like its runtime: keep it as one (checked entry by
        // entry: no absolute paths, `..`, links out, devices, bombs).
        if doc.image.is_none() {
            let file = doc.file_name.clone().ok_or_else(|| {
                IronError::bad("file_name is required with a zip: the file to run")
            })?;
            check_file_name(&file)?;
            let pkg = package_name(&name);
            let rev = s
                .storage
                .put_package(&p.project, &pkg, bytes::Bytes::from(zip_bytes))
                .await?;
            doc.package = Some(format!("{pkg}@{}", rev.rev));
        }
    }
    if doc.image.is_none() && doc.zip_file.is_none() {
        return Err(IronError::bad(
            "send an 'image' (a Docker-image code) or a zip in the 'file' part",
        ));
    }
    if let Some(cfg) = &doc.config {
        doc.config_file = Some(store_text(&s, &p.project, CONFIG_NAME, cfg).await?);
    }
    let code = s.store.put_iron_code(&p.project, &name, &doc).await?;
    // The configurations of the code's schedules follow its latest revision.
    let network = network_for(&s, &p.project).await?;
    for sched in s.store.iron_schedules_of_code(&p.project, &code.id).await? {
        if let Ok(spec) = super::schedules::schedule_spec(&code, &sched.id, &sched.doc, network) {
            let (stored, _) = s
                .control()
                .seal_spec(&p.project, spec)
                .await
                .map_err(ApiError::from)?;
            s.store
                .update_config(&p.project, &sched.config_id, &stored)
                .await?;
        }
    }
    let mut view = code_view(&code);
    view["msg"] = json!("Upload successful.");
    Ok(json_ok(view))
}

#[cfg(test)]
mod tests {
    use super::python_bytes_literal;

    #[test]
    fn python_bytes_literals_decode_to_their_bytes() {
        assert_eq!(
            python_bytes_literal(br"b'PK\x03\x04a\'\\\n'").expect("decodes"),
            b"PK\x03\x04a'\\\n"
        );
        assert_eq!(python_bytes_literal(br#"b"x'y""#).expect("decodes"), b"x'y");
        assert!(python_bytes_literal(b"PK\x03\x04").is_none());
        assert!(python_bytes_literal(br"b'\x4'").is_none());
        assert!(python_bytes_literal(br"b'a'b'").is_none());
    }
}
