//! Code packages (IronWorker's codes): a zip or tar.gz of code, kept as an
//! object per revision and turned into a Docker build context (the stack
//! plus the code under `/code`).
//!
//! Nothing in an archive is trusted. It is never unpacked onto a disk:
//! each entry is checked and copied into a fresh tar (owner root, modes
//! 0644/0755, time 0, so the same package always makes the same context and
//! the engine's layer cache holds). Refused: absolute paths, `..`, links
//! that point outside the package or anywhere absolute, hard links, device
//! files and FIFOs, more than [`MAX_ENTRIES`] entries, more than
//! [`MAX_UNPACKED`] bytes once unpacked (counted as bytes come out of the
//! decompressor, whatever the headers claim).

use crate::{Result, Storage, StorageError};
use bytes::Bytes;
use gantry_core::ProjectId;
use gantry_store::PackageRev;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};

/// Most entries (files, folders, links) a package may hold.
pub const MAX_ENTRIES: usize = 10_000;
/// Most bytes a package may unpack to.
pub const MAX_UNPACKED: u64 = 128 << 20;
/// Largest archive accepted (as uploaded).
pub const MAX_ARCHIVE: usize = 64 << 20;

fn invalid(m: impl Into<String>) -> StorageError {
    StorageError::Invalid(format!("code package: {}", m.into()))
}

/// A checked path inside the package (`a/b.py`), or why not.
fn clean_path(raw: &[u8]) -> Result<String> {
    let text = std::str::from_utf8(raw).map_err(|_| invalid("an entry name is not UTF-8"))?;
    let shown: String = text.chars().take(200).collect();
    if text.starts_with('/') || text.starts_with('\\') || text.contains(":\\") {
        return Err(invalid(format!("absolute path refused: {shown}")));
    }
    if text.chars().any(char::is_control) {
        return Err(invalid(format!("control character in a name: {shown:?}")));
    }
    let mut parts = Vec::new();
    for part in text.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => return Err(invalid(format!("path with .. refused: {shown}"))),
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// Whether a link at `at` pointing to `target` stays inside the package.
fn link_inside(at: &str, target: &str) -> bool {
    if target.starts_with('/') || target.is_empty() {
        return false;
    }
    let mut depth: Vec<&str> = at.split('/').collect();
    depth.pop(); // the link's own name
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if depth.pop().is_none() {
                    return false;
                }
            }
            p => depth.push(p),
        }
    }
    true
}

enum Kind {
    Dir,
    File { exec: bool },
    Symlink(String),
}

/// Builds the normalized context tar while entries come in.
struct Context {
    tar: tar::Builder<Vec<u8>>,
    entries: usize,
    unpacked: u64,
}

impl Context {
    fn new(stack_image: &str) -> Result<Self> {
        let mut ctx = Self {
            tar: tar::Builder::new(Vec::new()),
            entries: 0,
            unpacked: 0,
        };
        let dockerfile =
            format!("FROM {stack_image}\nCOPY code/ /code/\nWORKDIR /code\n").into_bytes();
        ctx.append(
            "Dockerfile",
            0o644,
            tar::EntryType::Regular,
            &dockerfile,
            None,
        )?;
        ctx.append("code", 0o755, tar::EntryType::Directory, &[], None)?;
        Ok(ctx)
    }

    fn append(
        &mut self,
        path: &str,
        mode: u32,
        kind: tar::EntryType,
        data: &[u8],
        link: Option<&str>,
    ) -> Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(data.len() as u64);
        let io = |e: std::io::Error| invalid(e.to_string());
        match link {
            Some(target) => self.tar.append_link(&mut h, path, target).map_err(io),
            None => self.tar.append_data(&mut h, path, data).map_err(io),
        }
    }

    /// Adds one entry of the package; `content` yields a file's bytes.
    fn add(&mut self, raw_name: &[u8], kind: Kind, content: &mut dyn Read) -> Result<()> {
        self.entries += 1;
        if self.entries > MAX_ENTRIES {
            return Err(invalid(format!("more than {MAX_ENTRIES} entries")));
        }
        let path = clean_path(raw_name)?;
        if path.is_empty() {
            return Ok(());
        }
        let at = format!("code/{path}");
        match kind {
            Kind::Dir => self.append(&at, 0o755, tar::EntryType::Directory, &[], None),
            Kind::Symlink(target) => {
                if !link_inside(&path, &target) {
                    return Err(invalid(format!(
                        "link pointing outside the package refused: {path} -> {}",
                        target.chars().take(200).collect::<String>()
                    )));
                }
                self.append(&at, 0o777, tar::EntryType::Symlink, &[], Some(&target))
            }
            Kind::File { exec } => {
                let room = MAX_UNPACKED - self.unpacked;
                let mut data = Vec::new();
                content
                    .take(room + 1)
                    .read_to_end(&mut data)
                    .map_err(|e| invalid(format!("{path}: {e}")))?;
                self.unpacked += data.len() as u64;
                if data.len() as u64 > room {
                    return Err(invalid(format!(
                        "unpacks to more than {} MiB",
                        MAX_UNPACKED >> 20
                    )));
                }
                let mode = if exec { 0o755 } else { 0o644 };
                self.append(&at, mode, tar::EntryType::Regular, &data, None)
            }
        }
    }

    fn finish(self) -> Result<Bytes> {
        let data = self.tar.into_inner().map_err(|e| invalid(e.to_string()))?;
        Ok(Bytes::from(data))
    }
}

fn from_zip(archive: &[u8], ctx: &mut Context) -> Result<()> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(archive))
        .map_err(|e| invalid(format!("not a readable zip: {e}")))?;
    if zip.len() > MAX_ENTRIES {
        return Err(invalid(format!("more than {MAX_ENTRIES} entries")));
    }
    for i in 0..zip.len() {
        let mut f = zip
            .by_index(i)
            .map_err(|e| invalid(format!("entry {i}: {e}")))?;
        let name = f.name_raw().to_vec();
        let mode = f.unix_mode().unwrap_or(0);
        let kind = match mode & 0o170000 {
            0o120000 => {
                let mut target = String::new();
                (&mut f)
                    .take(4096)
                    .read_to_string(&mut target)
                    .map_err(|e| invalid(format!("a link's target: {e}")))?;
                Kind::Symlink(target)
            }
            0o020000 | 0o060000 | 0o010000 | 0o140000 => {
                return Err(invalid(format!(
                    "device file, FIFO or socket refused: {}",
                    String::from_utf8_lossy(&name)
                )))
            }
            _ if f.is_dir() => Kind::Dir,
            _ => Kind::File {
                exec: mode & 0o111 != 0,
            },
        };
        ctx.add(&name, kind, &mut f)?;
    }
    Ok(())
}

fn from_tar_gz(archive: &[u8], ctx: &mut Context) -> Result<()> {
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(archive));
    let entries = tar
        .entries()
        .map_err(|e| invalid(format!("not a readable tar.gz: {e}")))?;
    for entry in entries {
        let mut e = entry.map_err(|e| invalid(format!("not a readable tar.gz: {e}")))?;
        let name = e.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&name)
            .chars()
            .take(200)
            .collect::<String>();
        let kind = match e.header().entry_type() {
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Regular | tar::EntryType::Continuous => Kind::File {
                exec: e.header().mode().unwrap_or(0) & 0o111 != 0,
            },
            tar::EntryType::Symlink => {
                let target = e
                    .link_name_bytes()
                    .map(|t| String::from_utf8_lossy(&t).into_owned())
                    .unwrap_or_default();
                Kind::Symlink(target)
            }
            tar::EntryType::Link => {
                return Err(invalid(format!("hard link refused: {shown}")));
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                return Err(invalid(format!("device file or FIFO refused: {shown}")));
            }
            // Metadata entries (PAX, GNU long names) are read by `tar` itself.
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => continue,
            other => {
                return Err(invalid(format!("entry type {other:?} refused: {shown}")));
            }
        };
        ctx.add(&name, kind, &mut e)?;
    }
    Ok(())
}

/// Checks a package archive and makes the build context of `stack_image`
/// plus its code.
pub fn build_context(archive: &[u8], stack_image: &str) -> Result<Bytes> {
    let mut ctx = Context::new(stack_image)?;
    match archive {
        [b'P', b'K', 3, 4, ..] | [b'P', b'K', 5, 6, ..] => from_zip(archive, &mut ctx)?,
        [0x1f, 0x8b, ..] => from_tar_gz(archive, &mut ctx)?,
        _ => return Err(invalid("must be a zip or a tar.gz")),
    }
    ctx.finish()
}

impl Storage {
    /// Checks a package archive and keeps it as the next revision of `name`.
    pub async fn put_package(
        &self,
        project: &ProjectId,
        name: &str,
        archive: Bytes,
    ) -> Result<PackageRev> {
        if archive.len() > MAX_ARCHIVE {
            return Err(StorageError::TooLarge(format!(
                "code package: larger than {} MiB",
                MAX_ARCHIVE >> 20
            )));
        }
        let checked = archive.clone();
        tokio::task::spawn_blocking(move || build_context(&checked, "scratch"))
            .await
            .map_err(|e| StorageError::Io(std::io::Error::other(e)))??;
        let sha = hex_of(&Sha256::digest(&archive));
        let key = format!("{project}/packages/{name}/{}", uuid::Uuid::now_v7());
        let path = object_store::path::Path::from(key.as_str());
        let mut sink = self.sink(&path).await?;
        if let Err(e) = sink.write(archive.clone()).await {
            sink.abort().await;
            return Err(e);
        }
        sink.finish().await?;
        match self
            .store
            .add_package_rev(project, name, &key, &sha, archive.len() as u64)
            .await
        {
            Ok(rev) => Ok(rev),
            Err(e) => {
                self.delete_objects(std::slice::from_ref(&key)).await;
                Err(StorageError::Store(e))
            }
        }
    }

    /// The archive of a package revision.
    pub async fn package_bytes(&self, rev: &PackageRev) -> Result<Bytes> {
        let path = object_store::path::Path::from(rev.object_key.as_str());
        Ok(self.objects.get(&path).await?.bytes().await?)
    }
}

fn hex_of(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(HexSink(&mut s), "{b:02x}");
    }
    s
}

struct HexSink<'a>(&'a mut String);

impl Write for HexSink<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.push_str(&String::from_utf8_lossy(buf));
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_gz(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        let raw = b.into_inner().expect("tar");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&raw).expect("gz");
        gz.finish().expect("gz")
    }

    fn header(kind: tar::EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(0o644);
        h.set_size(size);
        h
    }

    /// Writes a raw name (the tar crate itself refuses `..` and absolute
    /// names, as an attacker's tool would not).
    fn raw_entry(b: &mut tar::Builder<Vec<u8>>, name: &str, kind: tar::EntryType, link: &str) {
        let mut h = header(kind, 0);
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_cksum();
        b.append(&h, std::io::empty()).expect("append");
    }

    fn zip_of(entries: &[(&str, u32, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, mode, data) in entries {
            let opts = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated)
                .unix_permissions(*mode);
            if mode & 0o170000 == 0o120000 {
                w.add_symlink(*name, std::str::from_utf8(data).expect("utf8"), opts)
                    .expect("link");
            } else {
                w.start_file(*name, opts).expect("start");
                w.write_all(data).expect("write");
            }
        }
        w.finish().expect("zip").into_inner()
    }

    fn names(context: &[u8]) -> Vec<String> {
        let mut a = tar::Archive::new(context);
        a.entries()
            .expect("entries")
            .map(|e| {
                e.expect("entry")
                    .path()
                    .expect("path")
                    .display()
                    .to_string()
            })
            .collect()
    }

    fn refused(archive: &[u8]) -> String {
        build_context(archive, "stack")
            .expect_err("refused")
            .to_string()
    }

    #[test]
    fn a_good_package_becomes_code_under_slash_code() {
        let z = zip_of(&[
            ("main.py", 0o100755, b"print(1)"),
            ("lib/util.py", 0o100644, b"x = 1"),
            ("lib/link.py", 0o120777, b"util.py"),
        ]);
        let ctx = build_context(&z, "sha256:abc").expect("context");
        let n = names(&ctx);
        assert!(n.contains(&"Dockerfile".to_string()), "{n:?}");
        assert!(n.contains(&"code/main.py".to_string()), "{n:?}");
        assert!(n.contains(&"code/lib/link.py".to_string()), "{n:?}");
        // Same package, same bytes: the engine's cache holds.
        assert_eq!(ctx, build_context(&z, "sha256:abc").expect("again"));
        let t = tar_gz(|b| {
            let data = b"print(2)";
            b.append_data(
                &mut header(tar::EntryType::Regular, 8),
                "app/main.py",
                &data[..],
            )
            .expect("append");
        });
        assert!(names(&build_context(&t, "s").expect("tgz")).contains(&"code/app/main.py".into()));
    }

    #[test]
    fn zip_slip_absolute_paths_links_devices_and_bombs_are_refused() {
        let slip = zip_of(&[("../../etc/cron.d/x", 0o100644, b"x")]);
        assert!(
            refused(&slip).contains("path with .. refused"),
            "{}",
            refused(&slip)
        );
        let abs = zip_of(&[("/etc/passwd", 0o100644, b"x")]);
        assert!(refused(&abs).contains("absolute path refused"));
        let out = zip_of(&[("lib/l", 0o120777, b"../../etc/passwd")]);
        assert!(refused(&out).contains("link pointing outside"));
        let abs_link = zip_of(&[("l", 0o120777, b"/etc/passwd")]);
        assert!(refused(&abs_link).contains("link pointing outside"));
        let t = tar_gz(|b| raw_entry(b, "../x.py", tar::EntryType::Regular, ""));
        assert!(refused(&t).contains("path with .. refused"));
        let t = tar_gz(|b| raw_entry(b, "/abs.py", tar::EntryType::Regular, ""));
        assert!(refused(&t).contains("absolute path refused"));
        let t = tar_gz(|b| raw_entry(b, "l", tar::EntryType::Symlink, "/etc/shadow"));
        assert!(refused(&t).contains("link pointing outside"));
        let t = tar_gz(|b| raw_entry(b, "h", tar::EntryType::Link, "/etc/shadow"));
        assert!(refused(&t).contains("hard link refused"));
        let t = tar_gz(|b| raw_entry(b, "dev", tar::EntryType::Char, ""));
        assert!(refused(&t).contains("device file"));
        let t = tar_gz(|b| raw_entry(b, "fifo", tar::EntryType::Fifo, ""));
        assert!(refused(&t).contains("device file"));
        // A bomb: a few hundred KiB that unpack past the limit.
        let zeros = vec![0u8; (MAX_UNPACKED + 1) as usize];
        let bomb = zip_of(&[("zeros", 0o100644, &zeros)]);
        assert!(bomb.len() < 1 << 20, "{}", bomb.len());
        assert!(refused(&bomb).contains("unpacks to more than"));
        let many: Vec<(String, u32, &[u8])> = (0..=MAX_ENTRIES)
            .map(|i| (format!("f{i}"), 0o100644, &b""[..]))
            .collect();
        let many: Vec<(&str, u32, &[u8])> =
            many.iter().map(|(n, m, d)| (n.as_str(), *m, *d)).collect();
        assert!(refused(&zip_of(&many)).contains("entries"));
        assert!(refused(b"hello").contains("zip or a tar.gz"));
    }
}
