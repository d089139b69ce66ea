//! Imported code system releases (`terminology_releases`): stored once by
//! `charaka terminology import`, read at every start.

use super::db::Query;
use super::{Store, StoreError};

impl Store {
    /// Stores (or replaces) a release's derived form.
    pub async fn save_release(
        &self,
        system: &str,
        version: &str,
        source_sha256: &str,
        data: Vec<u8>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let q = Query::new(
            "INSERT INTO terminology_releases (system, version, loaded_at, source_sha256, data) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (system, version) DO UPDATE SET loaded_at = excluded.loaded_at, \
             source_sha256 = excluded.source_sha256, data = excluded.data",
        )
        .text(system)
        .text(version)
        .int(crate::fhir::datetime::now_micros())
        .text(source_sha256)
        .bytes(data);
        tx.tx.conn().execute(&q).await?;
        tx.commit().await
    }

    /// Every stored release of a system: (version, derived form).
    pub async fn releases(&self, system: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut conn = self.read_conn().await?;
        let q = Query::new(
            "SELECT version, data FROM terminology_releases WHERE system = $1 ORDER BY version",
        )
        .text(system);
        conn.conn()
            .fetch_all(&q)
            .await?
            .iter()
            .map(|r| Ok((r.text(0)?, r.opt_bytes(1)?.unwrap_or_default())))
            .collect()
    }
}
