//! `signing_keys` table: the only place that writes it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{FromRow, Row};

use super::postgres::PostgresStore;
use super::sqlite::SqliteStore;
use super::{KeyStore, StoreError, StoreResult, WriteLock};
pub use crate::model::KeyStatus;

/// A key about to be stored.
#[derive(Debug, Clone)]
pub struct NewSigningKey {
    /// RFC 7638 thumbprint of the public key.
    pub kid: String,
    /// JWS algorithm name (`RS256`, …).
    pub algorithm: String,
    /// The public JWK as JSON.
    pub public_jwk: String,
    /// PKCS#8 private key, encrypted with the key-encryption key.
    pub private_key_encrypted: Vec<u8>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
}

/// A stored key.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SigningKeyRow {
    /// RFC 7638 thumbprint of the public key.
    pub kid: String,
    /// JWS algorithm name.
    pub algorithm: String,
    /// The public JWK as JSON.
    pub public_jwk: String,
    /// PKCS#8 private key, encrypted with the key-encryption key.
    pub private_key_encrypted: Vec<u8>,
    /// Active or retired.
    pub status: KeyStatus,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// For a pending key: when it starts signing.
    pub activate_at: Option<DateTime<Utc>>,
    /// For a retiring key: when it leaves the JWKS and stops verifying.
    pub retire_at: Option<DateTime<Utc>>,
}

macro_rules! key_columns {
    () => {
        "kid, algorithm, public_jwk, private_key_encrypted, status, created_at, activate_at, \
         retire_at"
    };
}

fn key_from_row<R: Row>(row: &R) -> StoreResult<SigningKeyRow>
where
    SigningKeyRow: for<'r> sqlx::FromRow<'r, R>,
{
    SigningKeyRow::from_row(row).map_err(|e| StoreError::from_sqlx(e, "signing key"))
}

/// The same queries serve both pools; the macro only repeats the impl block per store type.
macro_rules! impl_key_store {
    ($store:ty) => {
        #[async_trait]
        impl KeyStore for $store {
            #[tracing::instrument(skip_all, fields(kid = %key.kid))]
            async fn insert_key_if_none_active(&self, key: &NewSigningKey) -> StoreResult<bool> {
                let sql = concat!(
                    "INSERT INTO signing_keys (",
                    key_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL) ON CONFLICT DO NOTHING"
                );
                let done = sqlx::query(sql)
                    .bind(&key.kid)
                    .bind(&key.algorithm)
                    .bind(&key.public_jwk)
                    .bind(&key.private_key_encrypted)
                    .bind(KeyStatus::Active)
                    .bind(key.created_at)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| StoreError::from_sqlx(e, "signing key"))?;
                Ok(done.rows_affected() == 1)
            }

            #[tracing::instrument(skip_all)]
            async fn active_key(&self) -> StoreResult<Option<SigningKeyRow>> {
                let sql = concat!(
                    "SELECT ",
                    key_columns!(),
                    " FROM signing_keys WHERE status = 'active'"
                );
                let row = sqlx::query(sql)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|e| StoreError::from_sqlx(e, "signing key"))?;
                row.as_ref().map(key_from_row).transpose()
            }

            #[tracing::instrument(skip_all)]
            async fn published_keys(&self, now: DateTime<Utc>) -> StoreResult<Vec<SigningKeyRow>> {
                let sql = concat!(
                    "SELECT ",
                    key_columns!(),
                    " FROM signing_keys WHERE status IN ('pending', 'active') OR retire_at > $1 \
                     ORDER BY created_at DESC"
                );
                let rows = sqlx::query(sql)
                    .bind(now)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| StoreError::from_sqlx(e, "signing key"))?;
                rows.iter().map(key_from_row).collect()
            }

            #[tracing::instrument(skip_all, fields(kid = %key.kid))]
            async fn schedule_key(
                &self,
                key: &NewSigningKey,
                activate_at: DateTime<Utc>,
                retire_active_at: DateTime<Utc>,
            ) -> StoreResult<()> {
                let e = |e| StoreError::from_sqlx(e, "signing key");
                let mut tx = self.begin_write(WriteLock::SigningKeys).await?;
                // A key still waiting never signed anything: the newer rotation replaces it.
                sqlx::query("DELETE FROM signing_keys WHERE status = 'pending'")
                    .execute(&mut *tx)
                    .await
                    .map_err(e)?;
                sqlx::query("UPDATE signing_keys SET retire_at = $1 WHERE status = 'active'")
                    .bind(retire_active_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(e)?;
                sqlx::query(concat!(
                    "INSERT INTO signing_keys (",
                    key_columns!(),
                    ") VALUES ($1, $2, $3, $4, 'pending', $5, $6, NULL)"
                ))
                .bind(&key.kid)
                .bind(&key.algorithm)
                .bind(&key.public_jwk)
                .bind(&key.private_key_encrypted)
                .bind(key.created_at)
                .bind(activate_at)
                .execute(&mut *tx)
                .await
                .map_err(e)?;
                tx.commit().await.map_err(e)
            }

            #[tracing::instrument(skip_all)]
            async fn activate_due_key(&self, now: DateTime<Utc>) -> StoreResult<bool> {
                let e = |e| StoreError::from_sqlx(e, "signing key");
                let mut tx = self.begin_write(WriteLock::SigningKeys).await?;
                let due = sqlx::query(
                    "SELECT kid FROM signing_keys WHERE status = 'pending' AND activate_at <= $1",
                )
                .bind(now)
                .fetch_optional(&mut *tx)
                .await
                .map_err(e)?;
                let Some(due) = due else {
                    return Ok(false);
                };
                let kid: String = due.try_get("kid").map_err(e)?;
                // Guarded by kid and status, so replicas racing to activate do it once.
                sqlx::query(
                    "UPDATE signing_keys SET status = 'retired', \
                     retire_at = COALESCE(retire_at, $2) \
                     WHERE status = 'active' AND kid <> $1",
                )
                .bind(&kid)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(e)?;
                let done = sqlx::query(
                    "UPDATE signing_keys SET status = 'active' WHERE kid = $1 AND status = 'pending'",
                )
                .bind(&kid)
                .execute(&mut *tx)
                .await
                .map_err(e)?;
                if done.rows_affected() != 1 {
                    // A concurrent rotation replaced the pending key after we read it: undo
                    // the retirement (dropping the transaction rolls back).
                    return Ok(false);
                }
                tx.commit().await.map_err(e)?;
                Ok(true)
            }

            #[tracing::instrument(skip_all, fields(%kid))]
            async fn retire_key_now(
                &self,
                kid: &str,
                now: DateTime<Utc>,
            ) -> StoreResult<Option<KeyStatus>> {
                let e = |e| StoreError::from_sqlx(e, "signing key");
                let mut tx = self.begin_write(WriteLock::SigningKeys).await?;
                let status: Option<KeyStatus> =
                    sqlx::query_scalar("SELECT status FROM signing_keys WHERE kid = $1")
                        .bind(kid)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(e)?;
                let Some(status) = status else {
                    return Ok(None);
                };
                if status != KeyStatus::Retired {
                    return Ok(Some(status));
                }
                sqlx::query(
                    "UPDATE signing_keys SET retire_at = $2, private_key_encrypted = $3 \
                     WHERE kid = $1 AND (retire_at IS NULL OR retire_at > $2)",
                )
                .bind(kid)
                .bind(now)
                .bind(Vec::<u8>::new())
                .execute(&mut *tx)
                .await
                .map_err(e)?;
                tx.commit().await.map_err(e)?;
                Ok(Some(status))
            }

            #[tracing::instrument(skip_all)]
            async fn wipe_retired_keys(&self) -> StoreResult<u64> {
                let done = sqlx::query(
                    "UPDATE signing_keys SET private_key_encrypted = $1 \
                     WHERE status = 'retired' AND length(private_key_encrypted) > 0",
                )
                .bind(Vec::<u8>::new())
                .execute(&self.pool)
                .await
                .map_err(|e| StoreError::from_sqlx(e, "signing key"))?;
                Ok(done.rows_affected())
            }
        }
    };
}

impl_key_store!(SqliteStore);
impl_key_store!(PostgresStore);
