//! [`ImageCatalog`] over SQLite (tables of the image-catalogue migration).

use super::{SqliteStore, NOW};
use crate::error::Error as StoreError;
use async_trait::async_trait;
use gantry_core::{ProjectId, WorkerId};
use gantry_store::{EngineImage, ImageCatalog, PackageRev, RegistryInfo, RegistryLogin, StackRow};
use rusqlite::{params, OptionalExtension, Row};

fn stack_from_row(r: &Row) -> rusqlite::Result<StackRow> {
    Ok(StackRow {
        name: r.get(0)?,
        image: r.get(1)?,
        created_at: r.get(2)?,
    })
}

const PACKAGE_COLS: &str = "name, rev, object_key, sha256, size, created_at";

fn package_from_row(r: &Row) -> rusqlite::Result<PackageRev> {
    Ok(PackageRev {
        name: r.get(0)?,
        rev: r.get(1)?,
        object_key: r.get(2)?,
        sha256: r.get(3)?,
        size: r.get::<_, i64>(4)? as u64,
        created_at: r.get(5)?,
    })
}

const IMAGE_COLS: &str = "worker_id, reference, image_id, kind, size, warm, last_used, created_at";

fn image_from_row(r: &Row) -> rusqlite::Result<EngineImage> {
    let worker: String = r.get(0)?;
    Ok(EngineImage {
        worker_id: worker.parse().map_err(|e: String| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
        })?,
        reference: r.get(1)?,
        image_id: r.get(2)?,
        kind: r.get(3)?,
        size: r.get::<_, i64>(4)? as u64,
        warm: r.get(5)?,
        last_used: r.get(6)?,
        created_at: r.get(7)?,
    })
}

#[async_trait]
impl ImageCatalog for SqliteStore {
    async fn put_registry(
        &self,
        project: &ProjectId,
        host: &str,
        username: &str,
        sealed_password: &str,
    ) -> gantry_store::Result<RegistryInfo> {
        let (p, h, u, s) = (
            project.to_string(),
            host.to_string(),
            username.to_string(),
            sealed_password.to_string(),
        );
        self.write(move |c| {
            c.execute(
                &format!(
                    "INSERT INTO registry_logins (project_id, host, username, secret, created_at)
                     VALUES (?1, ?2, ?3, ?4, {NOW})
                     ON CONFLICT (project_id, host) DO UPDATE SET
                       username = excluded.username, secret = excluded.secret,
                       created_at = excluded.created_at"
                ),
                params![p, h, u, s],
            )?;
            Ok(c.query_row(
                "SELECT host, username, created_at FROM registry_logins WHERE project_id = ?1 AND host = ?2",
                params![p, h],
                |r| {
                    Ok(RegistryInfo {
                        host: r.get(0)?,
                        username: r.get(1)?,
                        created_at: r.get(2)?,
                    })
                },
            )?)
        })
        .await
    }

    async fn list_registries(
        &self,
        project: &ProjectId,
    ) -> gantry_store::Result<Vec<RegistryInfo>> {
        let p = project.to_string();
        self.read(move |c| {
            let mut st = c.prepare(
                "SELECT host, username, created_at FROM registry_logins WHERE project_id = ?1 ORDER BY host",
            )?;
            let rows = st.query_map([p], |r| {
                Ok(RegistryInfo {
                    host: r.get(0)?,
                    username: r.get(1)?,
                    created_at: r.get(2)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn delete_registry(&self, project: &ProjectId, host: &str) -> gantry_store::Result<()> {
        let (p, h) = (project.to_string(), host.to_string());
        self.write(move |c| {
            let n = c.execute(
                "DELETE FROM registry_logins WHERE project_id = ?1 AND host = ?2",
                params![p, h],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("registry {h}")));
            }
            Ok(())
        })
        .await
    }

    async fn registry_login(
        &self,
        project: &ProjectId,
        host: &str,
    ) -> gantry_store::Result<Option<RegistryLogin>> {
        let (p, h) = (project.to_string(), host.to_string());
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT username, secret FROM registry_logins WHERE project_id = ?1 AND host = ?2",
                params![p, h],
                |r| {
                    Ok(RegistryLogin {
                        username: r.get(0)?,
                        sealed_password: r.get(1)?,
                    })
                },
            )
            .optional()?)
        })
        .await
    }

    async fn put_stack(&self, name: &str, image: &str) -> gantry_store::Result<StackRow> {
        let (n, i) = (name.to_string(), image.to_string());
        self.write(move |c| {
            c.execute(
                &format!(
                    "INSERT INTO stacks (name, image, created_at) VALUES (?1, ?2, {NOW})
                     ON CONFLICT (name) DO UPDATE SET image = excluded.image"
                ),
                params![n, i],
            )?;
            Ok(c.query_row(
                "SELECT name, image, created_at FROM stacks WHERE name = ?1",
                [&n],
                stack_from_row,
            )?)
        })
        .await
    }

    async fn list_stacks(&self) -> gantry_store::Result<Vec<StackRow>> {
        self.read(|c| {
            let mut st = c.prepare("SELECT name, image, created_at FROM stacks ORDER BY name")?;
            let rows = st.query_map([], stack_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn get_stack(&self, name: &str) -> gantry_store::Result<StackRow> {
        let n = name.to_string();
        self.read(move |c| {
            c.query_row(
                "SELECT name, image, created_at FROM stacks WHERE name = ?1",
                [&n],
                stack_from_row,
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("stack {n}")))
        })
        .await
    }

    async fn delete_stack(&self, name: &str) -> gantry_store::Result<()> {
        let n = name.to_string();
        self.write(move |c| {
            if c.execute("DELETE FROM stacks WHERE name = ?1", [&n])? == 0 {
                return Err(StoreError::NotFound(format!("stack {n}")));
            }
            Ok(())
        })
        .await
    }

    async fn add_package_rev(
        &self,
        project: &ProjectId,
        name: &str,
        object_key: &str,
        sha256: &str,
        size: u64,
    ) -> gantry_store::Result<PackageRev> {
        let (p, n, k, d) = (
            project.to_string(),
            name.to_string(),
            object_key.to_string(),
            sha256.to_string(),
        );
        self.write(move |c| {
            let rev: u32 = c.query_row(
                "SELECT COALESCE(MAX(rev), 0) + 1 FROM code_packages WHERE project_id = ?1 AND name = ?2",
                params![p, n],
                |r| r.get(0),
            )?;
            c.execute(
                &format!(
                    "INSERT INTO code_packages (project_id, name, rev, object_key, sha256, size, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, {NOW})"
                ),
                params![p, n, rev, k, d, size as i64],
            )?;
            Ok(c.query_row(
                &format!("SELECT {PACKAGE_COLS} FROM code_packages WHERE project_id = ?1 AND name = ?2 AND rev = ?3"),
                params![p, n, rev],
                package_from_row,
            )?)
        })
        .await
    }

    async fn get_package(
        &self,
        project: &ProjectId,
        name: &str,
        rev: Option<u32>,
    ) -> gantry_store::Result<PackageRev> {
        let (p, n) = (project.to_string(), name.to_string());
        self.read(move |c| {
            let found = match rev {
                Some(rev) => c
                    .query_row(
                        &format!("SELECT {PACKAGE_COLS} FROM code_packages WHERE project_id = ?1 AND name = ?2 AND rev = ?3"),
                        params![p, n, rev],
                        package_from_row,
                    )
                    .optional()?,
                None => c
                    .query_row(
                        &format!("SELECT {PACKAGE_COLS} FROM code_packages WHERE project_id = ?1 AND name = ?2 ORDER BY rev DESC LIMIT 1"),
                        params![p, n],
                        package_from_row,
                    )
                    .optional()?,
            };
            found.ok_or_else(|| {
                StoreError::NotFound(match rev {
                    Some(r) => format!("code package {n}@{r}"),
                    None => format!("code package {n}"),
                })
            })
        })
        .await
    }

    async fn list_packages(&self, project: &ProjectId) -> gantry_store::Result<Vec<PackageRev>> {
        let p = project.to_string();
        self.read(move |c| {
            let mut st = c.prepare(&format!(
                "SELECT {PACKAGE_COLS} FROM code_packages WHERE project_id = ?1 ORDER BY name, rev DESC"
            ))?;
            let rows = st.query_map([p], package_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn touch_image(&self, image: &EngineImage) -> gantry_store::Result<()> {
        let i = image.clone();
        self.write(move |c| {
            c.execute(
                &format!(
                    "INSERT INTO engine_images (worker_id, reference, image_id, kind, size, warm, last_used, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, {NOW}, {NOW})
                     ON CONFLICT (worker_id, reference) DO UPDATE SET
                       image_id = excluded.image_id, size = excluded.size,
                       warm = engine_images.warm OR excluded.warm, last_used = excluded.last_used"
                ),
                params![i.worker_id.as_str(), i.reference, i.image_id, i.kind, i.size as i64, i.warm],
            )?;
            Ok(())
        })
        .await
    }

    async fn list_images(
        &self,
        worker_id: Option<&WorkerId>,
    ) -> gantry_store::Result<Vec<EngineImage>> {
        let w = worker_id.map(WorkerId::to_string);
        self.read(move |c| {
            let mut st = c.prepare(&format!(
                "SELECT {IMAGE_COLS} FROM engine_images WHERE ?1 IS NULL OR worker_id = ?1
                 ORDER BY last_used, reference"
            ))?;
            let rows = st.query_map([w], image_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn forget_image(
        &self,
        worker_id: &WorkerId,
        reference: &str,
    ) -> gantry_store::Result<()> {
        let (w, r) = (worker_id.to_string(), reference.to_string());
        self.write(move |c| {
            c.execute(
                "DELETE FROM engine_images WHERE worker_id = ?1 AND reference = ?2",
                params![w, r],
            )?;
            Ok(())
        })
        .await
    }

    async fn keep_image(&self, image: &str) -> gantry_store::Result<()> {
        let i = image.to_string();
        self.write(move |c| {
            c.execute(
                &format!(
                    "INSERT INTO fleet_warm_images (image, created_at) VALUES (?1, {NOW})
                     ON CONFLICT (image) DO NOTHING"
                ),
                [&i],
            )?;
            Ok(())
        })
        .await
    }

    async fn unkeep_image(&self, image: &str) -> gantry_store::Result<()> {
        let i = image.to_string();
        self.write(move |c| {
            if c.execute("DELETE FROM fleet_warm_images WHERE image = ?1", [&i])? == 0 {
                return Err(StoreError::NotFound(format!("kept image {i}")));
            }
            Ok(())
        })
        .await
    }

    async fn kept_images(&self) -> gantry_store::Result<Vec<String>> {
        self.read(|c| {
            let mut st = c.prepare("SELECT image FROM fleet_warm_images ORDER BY image")?;
            let rows = st.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
        })
        .await
    }
}
