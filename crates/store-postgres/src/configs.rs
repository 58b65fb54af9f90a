//! Configurations on Postgres (the reference for how a concern is written
//! on this backend: writes in `serializable!`, reads on a pooled
//! connection, rows mapped by `*_from_row`).

use crate::error::{Error, Result};
use crate::jobs::{json, parse};
use crate::{serializable, PgStore, NOW};
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use gantry_core::{ConfigId, ProjectId};
use gantry_store::{Config, ConfigStore};
use serde_json::Value;
use tokio_postgres::Row;

const CONFIG_COLS: &str = "project_id, id, spec, state, version, created_at, updated_at";

fn config_from_row(r: &Row) -> Result<Config> {
    Ok(Config {
        project: parse(r.try_get(0)?)?,
        id: parse(r.try_get(1)?)?,
        spec: json(r.try_get::<_, &str>(2)?)?,
        state: json(r.try_get::<_, &str>(3)?)?,
        version: r.try_get(4)?,
        created_at: r.try_get(5)?,
        updated_at: r.try_get(6)?,
    })
}

pub(crate) async fn load_config(
    c: &impl GenericClient,
    project: &ProjectId,
    id: &ConfigId,
) -> Result<Config> {
    let stmt = c
        .prepare_cached(&format!(
            "SELECT {CONFIG_COLS} FROM configs WHERE project_id = $1 AND id = $2"
        ))
        .await?;
    match c
        .query_opt(&stmt, &[&project.as_str(), &id.as_str()])
        .await?
    {
        Some(r) => config_from_row(&r),
        None => Err(Error::NotFound(format!("configuration {id}"))),
    }
}

/// The first column of every row, as text.
pub(crate) async fn strings(
    c: &impl GenericClient,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<String>> {
    c.query(sql, params)
        .await?
        .iter()
        .map(|r| Ok(r.try_get(0)?))
        .collect()
}

#[async_trait]
impl ConfigStore for PgStore {
    async fn create_config(
        &self,
        project: &ProjectId,
        id: &ConfigId,
        spec: &Value,
    ) -> gantry_store::Result<Config> {
        let spec = spec.to_string();
        Ok(serializable!(self, |tx| {
            let inserted = tx
                .execute(
                    &format!(
                        "INSERT INTO configs (project_id, id, spec, created_at, updated_at) VALUES ($1, $2, $3, {NOW}, {NOW}) \
                         ON CONFLICT DO NOTHING"
                    ),
                    &[&project.as_str(), &id.as_str(), &spec],
                )
                .await?;
            if inserted == 0 {
                return Err(Error::Conflict(format!(
                    "configuration {id} already exists"
                )));
            }
            load_config(&tx, project, id).await?
        })?)
    }

    async fn update_config(
        &self,
        project: &ProjectId,
        id: &ConfigId,
        spec: &Value,
    ) -> gantry_store::Result<Config> {
        let spec = spec.to_string();
        Ok(serializable!(self, |tx| {
            let n = tx
                .execute(
                    &format!(
                        "UPDATE configs SET spec = $3, version = version + 1, updated_at = {NOW} \
                         WHERE project_id = $1 AND id = $2"
                    ),
                    &[&project.as_str(), &id.as_str(), &spec],
                )
                .await?;
            if n == 0 {
                return Err(Error::NotFound(format!("configuration {id}")));
            }
            load_config(&tx, project, id).await?
        })?)
    }

    async fn get_config(&self, project: &ProjectId, id: &ConfigId) -> gantry_store::Result<Config> {
        let c = self.client().await?;
        Ok(load_config(&c, project, id).await?)
    }

    async fn list_configs(&self, project: &ProjectId) -> gantry_store::Result<Vec<Config>> {
        let c = self.client().await?;
        let rows = c
            .query(
                &format!("SELECT {CONFIG_COLS} FROM configs WHERE project_id = $1 ORDER BY id"),
                &[&project.as_str()],
            )
            .await
            .map_err(Error::from)?;
        Ok(rows
            .iter()
            .map(config_from_row)
            .collect::<Result<Vec<_>>>()?)
    }

    async fn delete_config(&self, project: &ProjectId, id: &ConfigId) -> gantry_store::Result<()> {
        let (p, i) = (project.as_str(), id.as_str());
        Ok(serializable!(self, |tx| {
            let users = strings(
                &tx,
                "SELECT id FROM schedules WHERE project_id = $1 AND config_id = $2 ORDER BY id",
                &[&p, &i],
            )
            .await?;
            if !users.is_empty() {
                return Err(Error::Conflict(format!(
                    "configuration {id} is used by schedules: {}; delete or change them first",
                    users.join(", ")
                )));
            }
            let pipes = strings(
                &tx,
                "SELECT pipeline_id FROM pipeline_configs WHERE project_id = $1 AND config_id = $2 ORDER BY pipeline_id",
                &[&p, &i],
            )
            .await?;
            if !pipes.is_empty() {
                return Err(Error::Conflict(format!(
                    "configuration {id} is used by pipelines: {}; change them first",
                    pipes.join(", ")
                )));
            }
            let hooks = strings(
                &tx,
                "SELECT id FROM hooks WHERE project_id = $1 AND config_id = $2 ORDER BY id",
                &[&p, &i],
            )
            .await?;
            if !hooks.is_empty() {
                return Err(Error::Conflict(format!(
                    "configuration {id} is used by webhooks: {}; delete them first",
                    hooks.join(", ")
                )));
            }
            let n = tx
                .execute(
                    "DELETE FROM configs WHERE project_id = $1 AND id = $2",
                    &[&p, &i],
                )
                .await?;
            if n == 0 {
                return Err(Error::NotFound(format!("configuration {id}")));
            }
        })?)
    }
}
