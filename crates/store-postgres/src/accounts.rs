//! Tokens and projects (tenancy) on Postgres.

use crate::error::{Error, Result};
use crate::jobs::parse;
use crate::{serializable, PgStore, NOW};
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use gantry_core::spec::Loosening;
use gantry_core::{ProjectId, TokenId};
use gantry_store::{
    rules, AccountStore, NewToken, Principal, Project, Retention, StoreError, TokenInfo,
};
use tokio_postgres::Row;

/// A token's public id is the start of its hash.
const TOKEN_COLS: &str = "substr(hash, 1, 12), project_id, admin, description, created_at";

fn token_from_row(r: &Row) -> Result<TokenInfo> {
    Ok(TokenInfo {
        id: parse(r.try_get(0)?)?,
        project: parse(r.try_get(1)?)?,
        admin: r.try_get(2)?,
        description: r.try_get(3)?,
        created_at: r.try_get(4)?,
    })
}

fn allow_json(allow: &[Loosening]) -> String {
    let mut v = allow.to_vec();
    v.sort();
    v.dedup();
    serde_json::to_string(&v).unwrap_or_else(|_| "[]".into())
}

const PROJECT_COLS: &str =
    "id, allow, created_at, import_max_bytes, retention, number, max_running";

fn project_from_row(r: &Row) -> Result<Project> {
    let retention: Option<String> = r.try_get(4)?;
    Ok(Project {
        id: parse(r.try_get(0)?)?,
        number: r.try_get(5)?,
        allow: serde_json::from_str(r.try_get::<_, &str>(1)?)
            .map_err(|e| Error::Corrupt(format!("project allow list: {e}")))?,
        max_running: crate::jobs::opt_num(r.try_get(6)?)?,
        created_at: r.try_get(2)?,
        import_max_bytes: r.try_get::<_, Option<i64>>(3)?.map(|n| n.max(0) as u64),
        retention: match retention {
            Some(j) => serde_json::from_str(&j)
                .map_err(|e| Error::Corrupt(format!("project retention: {e}")))?,
            None => Retention::default(),
        },
    })
}

pub(crate) async fn load_project(c: &impl GenericClient, id: &ProjectId) -> Result<Project> {
    match c
        .query_opt(
            &format!("SELECT {PROJECT_COLS} FROM projects WHERE id = $1"),
            &[&id.as_str()],
        )
        .await?
    {
        Some(r) => project_from_row(&r),
        None => Err(Error::NotFound(format!("project '{id}'"))),
    }
}

async fn load_token(c: &impl GenericClient, hash: &str) -> Result<TokenInfo> {
    let r = c
        .query_one(
            &format!("SELECT {TOKEN_COLS} FROM tokens WHERE hash = $1"),
            &[&hash],
        )
        .await?;
    token_from_row(&r)
}

impl PgStore {
    /// Sets one column of a project and returns it.
    async fn set_project(
        &self,
        id: &ProjectId,
        sql: &str,
        value: &(dyn tokio_postgres::types::ToSql + Sync),
    ) -> gantry_store::Result<Project> {
        Ok(serializable!(self, |tx| {
            let n = tx.execute(sql, &[&id.as_str(), value]).await?;
            if n == 0 {
                return Err(Error::NotFound(format!("project '{id}'")));
            }
            load_project(&tx, id).await?
        })?)
    }
}

#[async_trait]
impl AccountStore for PgStore {
    async fn token_count(&self) -> gantry_store::Result<u64> {
        let c = self.client().await?;
        let n: i64 = c
            .query_one("SELECT COUNT(*) FROM tokens", &[])
            .await
            .map_err(Error::from)?
            .get(0);
        Ok(n as u64)
    }

    async fn create_token(
        &self,
        project: &ProjectId,
        admin: bool,
        description: &str,
    ) -> gantry_store::Result<NewToken> {
        let rules::MintedToken { secret, hash } = rules::mint_token();
        let info = serializable!(self, |tx| {
            tx.execute(
                &format!(
                    "INSERT INTO tokens (hash, project_id, admin, description, created_at) VALUES ($1, $2, $3, $4, {NOW})"
                ),
                &[&hash, &project.as_str(), &admin, &description],
            )
            .await?;
            load_token(&tx, &hash).await?
        })?;
        Ok(NewToken { secret, info })
    }

    async fn bootstrap_admin_token(
        &self,
        description: &str,
    ) -> gantry_store::Result<Option<NewToken>> {
        let rules::MintedToken { secret, hash } = rules::mint_token();
        let info = serializable!(self, |tx| {
            let n = tx
                .execute(
                    &format!(
                        "INSERT INTO tokens (hash, project_id, admin, description, created_at) \
                         SELECT $1, 'default', TRUE, $2, {NOW} WHERE NOT EXISTS (SELECT 1 FROM tokens)"
                    ),
                    &[&hash, &description],
                )
                .await?;
            if n == 0 {
                None
            } else {
                Some(load_token(&tx, &hash).await?)
            }
        })?;
        Ok(info.map(|info| NewToken { secret, info }))
    }

    async fn authenticate(&self, secret: &str) -> gantry_store::Result<Option<Principal>> {
        let hash = rules::hash_token(secret);
        let c = self.client().await?;
        let stmt = c
            .prepare_cached("SELECT project_id, admin, description FROM tokens WHERE hash = $1")
            .await
            .map_err(Error::from)?;
        let row = c.query_opt(&stmt, &[&hash]).await.map_err(Error::from)?;
        let Some(r) = row else { return Ok(None) };
        let out: Result<Principal> = (|| {
            Ok(Principal {
                project: parse(r.try_get(0)?)?,
                admin: r.try_get(1)?,
                token_id: rules::token_public_id(&hash)?,
                token_desc: r.try_get(2)?,
            })
        })();
        Ok(Some(out?))
    }

    async fn list_tokens(
        &self,
        project: Option<&ProjectId>,
    ) -> gantry_store::Result<Vec<TokenInfo>> {
        let c = self.client().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {TOKEN_COLS} FROM tokens WHERE $1::TEXT IS NULL OR project_id = $1 ORDER BY created_at, hash"
                ),
                &[&project.map(|p| p.as_str())],
            )
            .await
            .map_err(Error::from)?;
        Ok(rows
            .iter()
            .map(token_from_row)
            .collect::<Result<Vec<_>>>()?)
    }

    async fn delete_token(&self, id: &TokenId) -> gantry_store::Result<()> {
        let id = id.as_str();
        Ok(serializable!(self, |tx| {
            let n = tx
                .execute("DELETE FROM tokens WHERE substr(hash, 1, 12) = $1", &[&id])
                .await?;
            if n == 0 {
                return Err(Error::NotFound(format!("token '{id}'")));
            }
        })?)
    }

    async fn create_project(
        &self,
        id: &ProjectId,
        allow: &[Loosening],
    ) -> gantry_store::Result<Project> {
        let allow = allow_json(allow);
        Ok(serializable!(self, |tx| {
            let n = tx
                .execute(
                    &format!(
                        "INSERT INTO projects (id, allow, created_at, number) \
                         VALUES ($1, $2, {NOW}, (SELECT COALESCE(MAX(number), 0) + 1 FROM projects)) \
                         ON CONFLICT (id) DO NOTHING"
                    ),
                    &[&id.as_str(), &allow],
                )
                .await?;
            if n == 0 {
                return Err(Error::Conflict(format!("project '{id}' already exists")));
            }
            load_project(&tx, id).await?
        })?)
    }

    async fn get_project(&self, id: &ProjectId) -> gantry_store::Result<Project> {
        let c = self.client().await?;
        Ok(load_project(&c, id).await?)
    }

    async fn list_projects(&self) -> gantry_store::Result<Vec<Project>> {
        let c = self.client().await?;
        let rows = c
            .query(
                &format!("SELECT {PROJECT_COLS} FROM projects ORDER BY id"),
                &[],
            )
            .await
            .map_err(Error::from)?;
        Ok(rows
            .iter()
            .map(project_from_row)
            .collect::<Result<Vec<_>>>()?)
    }

    async fn set_project_allow(
        &self,
        id: &ProjectId,
        allow: &[Loosening],
    ) -> gantry_store::Result<Project> {
        let allow = allow_json(allow);
        self.set_project(id, "UPDATE projects SET allow = $2 WHERE id = $1", &allow)
            .await
    }

    async fn set_project_import_max(
        &self,
        id: &ProjectId,
        max: Option<u64>,
    ) -> gantry_store::Result<Project> {
        let max = max.map(|n| n.min(i64::MAX as u64) as i64);
        self.set_project(
            id,
            "UPDATE projects SET import_max_bytes = $2 WHERE id = $1",
            &max,
        )
        .await
    }

    async fn set_project_retention(
        &self,
        id: &ProjectId,
        policy: &Retention,
    ) -> gantry_store::Result<Project> {
        let policy =
            serde_json::to_string(policy).map_err(|e| StoreError::Internal(e.to_string()))?;
        self.set_project(
            id,
            "UPDATE projects SET retention = $2 WHERE id = $1",
            &policy,
        )
        .await
    }

    async fn set_project_max_running(
        &self,
        id: &ProjectId,
        max: Option<u32>,
    ) -> gantry_store::Result<Project> {
        let max = max.map(i64::from);
        self.set_project(
            id,
            "UPDATE projects SET max_running = $2 WHERE id = $1",
            &max,
        )
        .await
    }
}
