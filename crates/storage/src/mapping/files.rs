//! Files: output files collected from `out/files`, and the streams that
//! upload and download a file's content.

use super::collecting::{list_entries, open_regular, read_manifest, require_mapped, EntryKind};
use super::*;

impl Storage {
    pub(super) async fn collect_files(
        &self,
        project: &ProjectId,
        mapping: &OutputMapping,
        data: &Path,
        keys: &mut Vec<String>,
    ) -> Result<Vec<NewFile>> {
        let dir = data.join("out/files");
        let entries = list_entries(&dir, "out/files")?;
        require_mapped(
            &entries,
            mapping.files.iter().map(|m| m.source.as_str()),
            "files",
        )?;
        let mut out = Vec::new();
        for (name, kind) in entries {
            if name.ends_with(".manifest") {
                continue;
            }
            let shown = format!("out/files/{name}");
            if kind == EntryKind::Dir {
                return Err(StorageError::Invalid(format!(
                    "{shown} is a folder; only files are stored"
                )));
            }
            check_file_name(&name).map_err(|e| StorageError::Invalid(format!("{shown}: {e}")))?;
            let manifest = read_manifest(&dir.join(format!("{name}.manifest")), &shown)?;
            let mut tags: Vec<String> = match manifest.get("tags") {
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect(),
                _ => Vec::new(),
            };
            if let Some(m) = mapping.files.iter().find(|m| m.source == name) {
                tags.extend(m.tags.iter().cloned());
            }
            tags.sort();
            tags.dedup();
            let file = open_regular(&dir.join(&name)).await?;
            let (key, size) = self.upload(project, &name, file).await?;
            keys.push(key.clone());
            out.push(NewFile {
                name,
                tags,
                size,
                object_key: key,
            });
        }
        Ok(out)
    }

    /// Streams a file's content into a new object; returns its key and size.
    pub async fn upload<R: tokio::io::AsyncRead + Unpin>(
        &self,
        project: &ProjectId,
        name: &str,
        reader: R,
    ) -> Result<(String, u64)> {
        let key = new_key(project, "files", &sanitize(name));
        let mut upload = self.sink(&key).await?;
        let mut stream = tokio_util::io::ReaderStream::with_capacity(reader, 1 << 20);
        let mut size = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    upload.abort().await;
                    return Err(e.into());
                }
            };
            size += chunk.len() as u64;
            if let Err(e) = upload.write(chunk).await {
                upload.abort().await;
                return Err(e);
            }
        }
        upload.finish().await?;
        Ok((key.to_string(), size))
    }

    /// Streams a stored file's content.
    pub async fn download(
        &self,
        key: &str,
    ) -> Result<futures_util::stream::BoxStream<'static, Result<bytes::Bytes>>> {
        self.object_stream(key, 0).await
    }
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect()
}
