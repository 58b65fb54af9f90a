//! The image catalogue on Postgres: registry logins (sealed secrets),
//! stacks, code packages, the images each worker's engine holds.

use crate::configs::strings;
use crate::error::{Error, Result};
use crate::jobs::{num, parse};
use crate::{serializable, PgStore, NOW};
use async_trait::async_trait;
use gantry_core::{ProjectId, WorkerId};
use gantry_store::{EngineImage, ImageCatalog, PackageRev, RegistryInfo, RegistryLogin, StackRow};
use tokio_postgres::Row;

fn stack_from_row(r: &Row) -> Result<StackRow> {
    Ok(StackRow {
        name: r.try_get(0)?,
        image: r.try_get(1)?,
        created_at: r.try_get(2)?,
    })
}

const PACKAGE_COLS: &str = "name, rev, object_key, sha256, size, created_at";

fn package_from_row(r: &Row) -> Result<PackageRev> {
    Ok(PackageRev {
        name: r.try_get(0)?,
        rev: num(r.try_get(1)?)?,
        object_key: r.try_get(2)?,
        sha256: r.try_get(3)?,
        size: r.try_get::<_, i64>(4)? as u64,
        created_at: r.try_get(5)?,
    })
}

const IMAGE_COLS: &str = "worker_id, reference, image_id, kind, size, warm, last_used, created_at";

fn image_from_row(r: &Row) -> Result<EngineImage> {
    Ok(EngineImage {
        worker_id: parse(r.try_get(0)?)?,
        reference: r.try_get(1)?,
        image_id: r.try_get(2)?,
        kind: r.try_get(3)?,
        size: r.try_get::<_, i64>(4)? as u64,
        warm: r.try_get(5)?,
        last_used: r.try_get(6)?,
        created_at: r.try_get(7)?,
    })
}

fn registry_from_row(r: &Row) -> Result<RegistryInfo> {
    Ok(RegistryInfo {
        host: r.try_get(0)?,
        username: r.try_get(1)?,
        created_at: r.try_get(2)?,
    })
}

#[async_trait]
impl ImageCatalog for PgStore {
    async fn put_registry(
        &self,
        project: &ProjectId,
        host: &str,
        username: &str,
        sealed_password: &str,
    ) -> gantry_store::Result<RegistryInfo> {
        Ok(serializable!(self, |tx| {
            tx.execute(
                &format!(
                    "INSERT INTO registry_logins (project_id, host, username, secret, created_at)
                     VALUES ($1, $2, $3, $4, {NOW})
                     ON CONFLICT (project_id, host) DO UPDATE SET
                       username = excluded.username, secret = excluded.secret,
                       created_at = excluded.created_at"
                ),
                &[&project.as_str(), &host, &username, &sealed_password],
            )
            .await?;
            let r = tx
                .query_one(
                    "SELECT host, username, created_at FROM registry_logins WHERE project_id = $1 AND host = $2",
                    &[&project.as_str(), &host],
                )
                .await?;
            registry_from_row(&r)?
        })?)
    }

    async fn list_registries(
        &self,
        project: &ProjectId,
    ) -> gantry_store::Result<Vec<RegistryInfo>> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT host, username, created_at FROM registry_logins WHERE project_id = $1 ORDER BY host",
                &[&project.as_str()],
            )
            .await
            .map_err(Error::from)?;
        Ok(rows
            .iter()
            .map(registry_from_row)
            .collect::<Result<Vec<_>>>()?)
    }

    async fn delete_registry(&self, project: &ProjectId, host: &str) -> gantry_store::Result<()> {
        Ok(serializable!(self, |tx| {
            let n = tx
                .execute(
                    "DELETE FROM registry_logins WHERE project_id = $1 AND host = $2",
                    &[&project.as_str(), &host],
                )
                .await?;
            if n == 0 {
                return Err(Error::NotFound(format!("registry {host}")));
            }
        })?)
    }

    async fn registry_login(
        &self,
        project: &ProjectId,
        host: &str,
    ) -> gantry_store::Result<Option<RegistryLogin>> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                "SELECT username, secret FROM registry_logins WHERE project_id = $1 AND host = $2",
                &[&project.as_str(), &host],
            )
            .await
            .map_err(Error::from)?;
        let out: Result<Option<RegistryLogin>> = row
            .map(|r| {
                Ok(RegistryLogin {
                    username: r.try_get(0)?,
                    sealed_password: r.try_get(1)?,
                })
            })
            .transpose();
        Ok(out?)
    }

    async fn put_stack(&self, name: &str, image: &str) -> gantry_store::Result<StackRow> {
        Ok(serializable!(self, |tx| {
            tx.execute(
                &format!(
                    "INSERT INTO stacks (name, image, created_at) VALUES ($1, $2, {NOW})
                     ON CONFLICT (name) DO UPDATE SET image = excluded.image"
                ),
                &[&name, &image],
            )
            .await?;
            let r = tx
                .query_one(
                    "SELECT name, image, created_at FROM stacks WHERE name = $1",
                    &[&name],
                )
                .await?;
            stack_from_row(&r)?
        })?)
    }

    async fn list_stacks(&self) -> gantry_store::Result<Vec<StackRow>> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT name, image, created_at FROM stacks ORDER BY name",
                &[],
            )
            .await
            .map_err(Error::from)?;
        Ok(rows
            .iter()
            .map(stack_from_row)
            .collect::<Result<Vec<_>>>()?)
    }

    async fn get_stack(&self, name: &str) -> gantry_store::Result<StackRow> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                "SELECT name, image, created_at FROM stacks WHERE name = $1",
                &[&name],
            )
            .await
            .map_err(Error::from)?;
        match row {
            Some(r) => Ok(stack_from_row(&r)?),
            None => Err(Error::NotFound(format!("stack {name}")).into()),
        }
    }

    async fn delete_stack(&self, name: &str) -> gantry_store::Result<()> {
        Ok(serializable!(self, |tx| {
            if tx
                .execute("DELETE FROM stacks WHERE name = $1", &[&name])
                .await?
                == 0
            {
                return Err(Error::NotFound(format!("stack {name}")));
            }
        })?)
    }

    async fn add_package_rev(
        &self,
        project: &ProjectId,
        name: &str,
        object_key: &str,
        sha256: &str,
        size: u64,
    ) -> gantry_store::Result<PackageRev> {
        Ok(serializable!(self, |tx| {
            let rev: i64 = tx
                .query_one(
                    "SELECT COALESCE(MAX(rev), 0) + 1 FROM code_packages WHERE project_id = $1 AND name = $2",
                    &[&project.as_str(), &name],
                )
                .await?
                .try_get(0)?;
            tx.execute(
                &format!(
                    "INSERT INTO code_packages (project_id, name, rev, object_key, sha256, size, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, {NOW})"
                ),
                &[&project.as_str(), &name, &rev, &object_key, &sha256, &(size as i64)],
            )
            .await?;
            let r = tx
                .query_one(
                    &format!(
                        "SELECT {PACKAGE_COLS} FROM code_packages WHERE project_id = $1 AND name = $2 AND rev = $3"
                    ),
                    &[&project.as_str(), &name, &rev],
                )
                .await?;
            package_from_row(&r)?
        })?)
    }

    async fn get_package(
        &self,
        project: &ProjectId,
        name: &str,
        rev: Option<u32>,
    ) -> gantry_store::Result<PackageRev> {
        let c = self.client().await?;
        let found = c
            .query_opt(
                &format!(
                    "SELECT {PACKAGE_COLS} FROM code_packages WHERE project_id = $1 AND name = $2 \
                     AND ($3::BIGINT IS NULL OR rev = $3) ORDER BY rev DESC LIMIT 1"
                ),
                &[&project.as_str(), &name, &rev.map(i64::from)],
            )
            .await
            .map_err(Error::from)?;
        match found {
            Some(r) => Ok(package_from_row(&r)?),
            None => Err(Error::NotFound(match rev {
                Some(r) => format!("code package {name}@{r}"),
                None => format!("code package {name}"),
            })
            .into()),
        }
    }

    async fn list_packages(&self, project: &ProjectId) -> gantry_store::Result<Vec<PackageRev>> {
        let c = self.client().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {PACKAGE_COLS} FROM code_packages WHERE project_id = $1 ORDER BY name, rev DESC"
                ),
                &[&project.as_str()],
            )
            .await
            .map_err(Error::from)?;
        Ok(rows
            .iter()
            .map(package_from_row)
            .collect::<Result<Vec<_>>>()?)
    }

    async fn touch_image(&self, image: &EngineImage) -> gantry_store::Result<()> {
        let i = image;
        Ok(serializable!(self, |tx| {
            tx.execute(
                &format!(
                    "INSERT INTO engine_images (worker_id, reference, image_id, kind, size, warm, last_used, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, {NOW}, {NOW})
                     ON CONFLICT (worker_id, reference) DO UPDATE SET
                       image_id = excluded.image_id, size = excluded.size,
                       warm = engine_images.warm OR excluded.warm, last_used = excluded.last_used"
                ),
                &[&i.worker_id.as_str(), &i.reference, &i.image_id, &i.kind, &(i.size as i64), &i.warm],
            )
            .await?;
        })?)
    }

    async fn list_images(
        &self,
        worker_id: Option<&WorkerId>,
    ) -> gantry_store::Result<Vec<EngineImage>> {
        let worker_id = worker_id.map(WorkerId::as_str);
        let c = self.client().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {IMAGE_COLS} FROM engine_images WHERE $1::TEXT IS NULL OR worker_id = $1
                     ORDER BY last_used, reference"
                ),
                &[&worker_id],
            )
            .await
            .map_err(Error::from)?;
        Ok(rows
            .iter()
            .map(image_from_row)
            .collect::<Result<Vec<_>>>()?)
    }

    async fn forget_image(
        &self,
        worker_id: &WorkerId,
        reference: &str,
    ) -> gantry_store::Result<()> {
        let worker_id = worker_id.as_str();
        Ok(serializable!(self, |tx| {
            tx.execute(
                "DELETE FROM engine_images WHERE worker_id = $1 AND reference = $2",
                &[&worker_id, &reference],
            )
            .await?;
        })?)
    }

    async fn keep_image(&self, image: &str) -> gantry_store::Result<()> {
        Ok(serializable!(self, |tx| {
            tx.execute(
                &format!(
                    "INSERT INTO fleet_warm_images (image, created_at) VALUES ($1, {NOW})
                     ON CONFLICT (image) DO NOTHING"
                ),
                &[&image],
            )
            .await?;
        })?)
    }

    async fn unkeep_image(&self, image: &str) -> gantry_store::Result<()> {
        Ok(serializable!(self, |tx| {
            if tx
                .execute("DELETE FROM fleet_warm_images WHERE image = $1", &[&image])
                .await?
                == 0
            {
                return Err(Error::NotFound(format!("kept image {image}")));
            }
        })?)
    }

    async fn kept_images(&self) -> gantry_store::Result<Vec<String>> {
        let c = self.client().await?;
        Ok(strings(
            &c,
            "SELECT image FROM fleet_warm_images ORDER BY image",
            &[],
        )
        .await?)
    }
}
