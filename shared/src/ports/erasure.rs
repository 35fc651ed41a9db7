//! The erasure port: what erasure, the purge and the sync's tombstone check
//! ask of the store.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;

use serde::Serialize;

use crate::domain::TenantId;
use crate::ports::StoreResult;

/// What one purge step removed, by kind, and whether the tenant is gone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PurgeProgress {
    /// Items deleted by kind (`calls`, `comments`, `records`, `indexEntries`,
    /// `tenantItems`).
    pub deleted: BTreeMap<String, u64>,
    /// Every item of the tenant but its audit trail is deleted.
    pub done: bool,
}

/// Erased people (tombstones) and a tenant's removal.
pub trait ErasureStore: Send + Sync {
    /// The Contact and Lead ids the tenant erased: the sync does not bring them back.
    fn erased_ids(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = StoreResult<HashSet<String>>> + Send;

    /// Records ids as erased (ids only: no other personal data).
    fn add_erased_ids(
        &self,
        tenant: &TenantId,
        ids: &[String],
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Deletes the tenant's items, but its audit trail, in batches, until done or
    /// `max_requests` reads were spent; a later call goes on where this one stopped.
    fn purge_step(
        &self,
        tenant: &TenantId,
        max_requests: usize,
    ) -> impl Future<Output = StoreResult<PurgeProgress>> + Send;
}
